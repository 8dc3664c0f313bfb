"""boto3 sessions and clients for a :class:`~ddbsearch.targets.Target`, and one place that
turns botocore failures into :mod:`ddbsearch.errors`.

The local stack is reached through ``target.aws_endpoint`` (moto server) with fixed
dummy credentials, so a developer's real AWS credentials are never sent to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ddbsearch.errors import (
    AuthError,
    ConfigurationError,
    DdbsearchError,
    InputError,
    NotFoundError,
    UnreachableError,
)
from ddbsearch.targets import Target

# boto3 and botocore are imported where they are used: importing this module is free,
# and a command that needs no AWS call (a search of the local stack) never loads them.
if TYPE_CHECKING:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    from ddbsearch.core.transport import SearchTransport

# Emulator credentials: moto accepts anything, and fixed values keep real ones private.
_LOCAL_ACCESS_KEY = "local"
LOCAL_REGION = "us-east-1"  # the local stack's one region

_AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "AuthFailure",
        "UnauthorizedOperation",
        "IncompleteSignature",
    }
)
_NOT_FOUND_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "TableNotFoundException",
    }
)
_INPUT_CODES = frozenset({"ValidationException", "SerializationException"})


def _config(target: Target) -> Config:
    from botocore.config import Config

    # Fail fast against a stopped local stack; be patient with the real cloud.
    local = target.aws_endpoint is not None
    return Config(
        region_name=target.region,
        connect_timeout=2 if local else 10,
        read_timeout=30 if local else 60,
        retries={"mode": "standard", "max_attempts": 2 if local else 5},
        user_agent_extra="ddbsearch",
    )


def session(target: Target) -> boto3.Session:
    """A boto3 session for the target: its profile and region, or emulator credentials."""
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        if target.aws_endpoint is not None:
            return boto3.Session(
                aws_access_key_id=_LOCAL_ACCESS_KEY,
                aws_secret_access_key=_LOCAL_ACCESS_KEY,
                region_name=target.region,
            )
        return boto3.Session(profile_name=target.profile, region_name=target.region)
    except ProfileNotFound as exc:
        raise AuthError(
            f"AWS profile '{target.profile}' not found", hint="check AWS_PROFILE / --name"
        ) from exc


def client(
    target: Target,
    service: str,
    *,
    boto_session: boto3.Session | None = None,
    max_connections: int | None = None,
) -> Any:
    """A low-level client for ``service``; the local stack's endpoint when the target has one.

    ``max_connections`` sizes the connection pool for clients shared by many threads
    (botocore's default is 10). Typed as ``Any``: each service has its own client class.
    """
    from botocore.config import Config
    from botocore.exceptions import NoRegionError

    sess = boto_session or session(target)
    config = _config(target)
    if max_connections is not None:
        config = config.merge(Config(max_pool_connections=max_connections))
    kwargs: dict[str, Any] = {"config": config}
    if target.aws_endpoint is not None:
        kwargs["endpoint_url"] = target.aws_endpoint
    try:
        return sess.client(service, **kwargs)  # type: ignore[call-overload]
    except NoRegionError as exc:
        raise ConfigurationError(
            "no AWS region set", hint="pass --region or set AWS_REGION"
        ) from exc


def local_client(service: str, endpoint: str, *, region: str = LOCAL_REGION) -> Any:
    """A client for the local stack's moto server at ``endpoint`` (emulator credentials)."""
    import boto3
    from botocore.config import Config

    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=_LOCAL_ACCESS_KEY,
        aws_secret_access_key=_LOCAL_ACCESS_KEY,
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
    )


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _translate_client_error(exc: ClientError, what: str) -> DdbsearchError:
    code = error_code(exc)
    message = str(exc.response.get("Error", {}).get("Message", "")) or code
    if code in _AUTH_CODES:
        return AuthError(
            f"{what}: not authorised ({code})",
            hint="check your AWS credentials and the IAM permissions of the caller",
        )
    if code in _NOT_FOUND_CODES:
        return NotFoundError(f"{what}: {message}")
    if code in _INPUT_CODES:
        return InputError(f"{what}: {message}")
    return DdbsearchError(f"{what}: {code}: {message}")


def translate(exc: Exception, what: str) -> DdbsearchError:
    """The :mod:`ddbsearch.errors` equivalent of a botocore failure while doing ``what``."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
        TokenRetrievalError,
    )

    if isinstance(exc, DdbsearchError):
        return exc
    if isinstance(exc, ClientError):
        return _translate_client_error(exc, what)
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError)):
        url = getattr(exc, "kwargs", {}).get("endpoint_url", "the endpoint")
        return UnreachableError(
            f"{what}: cannot reach {url}",
            hint="is the local stack running ('ddbsearch deploy --local') / is the network up?",
        )
    if isinstance(exc, ReadTimeoutError):
        return UnreachableError(f"{what}: the endpoint did not answer in time")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError, TokenRetrievalError)):
        return AuthError(
            f"{what}: no usable AWS credentials",
            hint="configure credentials (aws configure / AWS_PROFILE)",
        )
    return DdbsearchError(f"{what}: {type(exc).__name__}: {exc}")


@contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Re-raise botocore failures inside the block as one-line :mod:`ddbsearch.errors`."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, what) from exc


def credentials_for(target: Target) -> Any:
    """The credentials to sign the target's requests with (None when there are none):
    the target's profile through botocore's chain (SSO, assume-role, credential_process,
    session tokens, as the AWS CLI), or emulator credentials for the local stack.

    The same chain :func:`session` gives, from botocore's session without boto3's
    (which imports s3transfer): a search of a SigV4 endpoint needs nothing else of AWS.
    """
    import botocore.session
    from botocore.exceptions import ProfileNotFound

    if target.aws_endpoint is not None:
        from botocore.credentials import Credentials

        return Credentials(_LOCAL_ACCESS_KEY, _LOCAL_ACCESS_KEY)
    try:
        sess = botocore.session.Session(profile=target.profile)
        if target.region:
            sess.set_config_variable("region", target.region)
        with aws_errors("resolving AWS credentials"):
            return sess.get_credentials()
    except ProfileNotFound as exc:
        raise AuthError(
            f"AWS profile '{target.profile}' not found", hint="check AWS_PROFILE / --name"
        ) from exc


def search_transport(target: Target) -> SearchTransport:
    """The core transport for the target, signing with the target's profile on AWS."""
    credentials = credentials_for(target) if target.sigv4 else None
    from ddbsearch.core.transport import SearchTransport

    return SearchTransport(
        target.search_endpoint,
        region=target.region,
        sigv4=target.sigv4,
        credentials=credentials,
    )
