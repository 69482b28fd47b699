"""A real S3 endpoint for tests: moto's server on 127.0.0.1, with the credentials a cluster node would have."""

import contextlib
import os
import socket


def free_port() -> int:
    """A port nothing listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def moto_endpoint(*buckets: str):
    """Yield 'host:port' of a running moto S3 server holding `buckets`; credentials are set in the environment
    (before Ray starts its workers, which inherit them) and restored afterwards."""
    import pyarrow.fs as pafs
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    try:
        fs = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", region="us-east-1",
                               allow_bucket_creation=True)
        for bucket in buckets:
            fs.create_dir(bucket)
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def uri(endpoint: str, path: str) -> str:
    """An s3:// URI of `path` (bucket/prefix) at a moto endpoint."""
    return f"s3://{path}?endpoint_override={endpoint}&scheme=http&region=us-east-1"
