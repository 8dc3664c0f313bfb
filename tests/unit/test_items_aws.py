"""botocore failures become one-line ddbsearch errors with the documented exit codes."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from ddbsearch.clients import aws_errors, client, translate
from ddbsearch.errors import (
    AuthError,
    DdbsearchError,
    ExitCode,
    InputError,
    NotFoundError,
    UnreachableError,
)
from ddbsearch.targets import Target


def client_error(code: str, message: str = "msg") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "DescribeTable")


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (client_error("AccessDeniedException"), AuthError, ExitCode.AUTH),
        (client_error("UnrecognizedClientException"), AuthError, ExitCode.AUTH),
        (client_error("ExpiredTokenException"), AuthError, ExitCode.AUTH),
        (client_error("ResourceNotFoundException"), NotFoundError, ExitCode.NOT_FOUND),
        (client_error("ValidationException"), InputError, ExitCode.USAGE),
        (client_error("InternalServerError"), DdbsearchError, ExitCode.ERROR),
        (EndpointConnectionError(endpoint_url="http://x"), UnreachableError, ExitCode.UNREACHABLE),
        (ReadTimeoutError(endpoint_url="http://x"), UnreachableError, ExitCode.UNREACHABLE),
        (NoCredentialsError(), AuthError, ExitCode.AUTH),
    ],
)
def test_translation(exc: Exception, kind: type[DdbsearchError], code: ExitCode) -> None:
    err = translate(exc, "table 'T'")
    assert type(err) is kind
    assert err.exit_code == code
    assert str(err).startswith("table 'T': ")
    assert "\n" not in str(err)


def test_aws_errors_context_manager_chains_the_cause() -> None:
    with pytest.raises(NotFoundError) as info, aws_errors("queue"):
        raise client_error("AWS.SimpleQueueService.NonExistentQueue", "no queue")
    assert str(info.value) == "queue: no queue"
    assert isinstance(info.value.__cause__, ClientError)


def test_local_targets_never_use_the_callers_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALKEY")
    local = Target("local", "local", "us-east-1", "T", "t", "http://x", aws_endpoint="http://m")
    creds = client(local, "dynamodb")._request_signer._credentials
    assert creds.access_key == "local"
    remote = Target("aws", "s", "eu-west-1", "T", "t", "https://x")
    aws_client = client(remote, "dynamodb")
    assert aws_client._request_signer._credentials.access_key == "AKIAREALKEY"
    assert aws_client.meta.region_name == "eu-west-1"
