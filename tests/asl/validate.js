#!/usr/bin/env node
// Validates Amazon States Language definitions with the pinned asl-validator:
// its JSON schemas, its JSONPath / intrinsic-function checks on every path field
// and ".$" field, its ARN check on Task resources, and its transition checks.
// Reads a JSON array of definitions on stdin; prints one JSON report per
// definition, in order: {"version", "reports": [{"isValid", "errors": [...]}]}.
// Exits 0 when every definition is valid, 1 when one is not, 2 on bad input.
// The package's own CLI is not used: it exits 0 on a definition it cannot parse.
"use strict";
const fs = require("fs");
const validator = require("asl-validator");
const { version } = require("asl-validator/package.json");

let definitions;
try {
  definitions = JSON.parse(fs.readFileSync(0, "utf8"));
  if (!Array.isArray(definitions)) throw new Error("expected a JSON array of definitions");
} catch (err) {
  process.stderr.write(`validate.js: ${err.message}\n`);
  process.exit(2);
}
const reports = definitions.map((definition) => {
  const { isValid, errors } = validator(definition, { checkPaths: true, checkArn: true });
  return {
    isValid,
    errors: errors.map((e) => ({
      path: e.instancePath ?? e.schemaError?.instancePath ?? "",
      code: e["Error code"] ?? e.keyword ?? "",
      message: e.Message ?? e.message ?? JSON.stringify(e),
    })),
  };
});
process.stdout.write(JSON.stringify({ version, reports }) + "\n");
process.exit(reports.every((r) => r.isValid) ? 0 : 1);
