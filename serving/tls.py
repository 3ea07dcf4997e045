"""TLS for gRPC, as TF Serving configures it: `--ssl_config_file`, a text-format
`tensorflow.serving.SSLConfig` (tensorflow_serving/config/ssl_config.proto):

    server_key: "-----BEGIN PRIVATE KEY-----\\n..."    # the server's private key, PEM
    server_cert: "-----BEGIN CERTIFICATE-----\\n..."   # its certificate (chain), PEM
    custom_ca: "-----BEGIN CERTIFICATE-----\\n..."     # CA of the client certificates, PEM
    client_verify: true                              # require a client certificate

TF Serving takes the PEM text itself in each field; `ihas serve` also takes the path of a PEM
file there (relative to the config file's folder), so that a config can name files. The
tensorflow-serving-api wheel ships no `ssl_config_pb2`, so the message is built here from the
same definition. No TensorFlow import: the command line reads it.
"""

import os

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

_PEM = "-----BEGIN "


def _ssl_config_class():
    proto = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/config/ssl_config.proto", package="tensorflow.serving",
        syntax="proto3")
    message = proto.message_type.add(name="SSLConfig")
    for number, (name, kind) in enumerate([
            ("server_key", "TYPE_STRING"), ("server_cert", "TYPE_STRING"),
            ("custom_ca", "TYPE_STRING"), ("client_verify", "TYPE_BOOL")], start=1):
        message.field.add(name=name, number=number, type=getattr(
            descriptor_pb2.FieldDescriptorProto, kind),
            label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()  # its own pool: no clash with a generated module
    pool.Add(proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.SSLConfig"))


SSLConfig = _ssl_config_class()


def _pem(value: str, folder: str, what: str, config_path: str) -> bytes:
    """A field's PEM bytes: the text itself, or the file it names."""
    if _PEM in value:
        return value.encode()
    path = os.path.join(folder, value)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError(f"{config_path}: {what}: cannot read {path}: {e.strerror}") from None
    if _PEM.encode() not in data:
        raise ValueError(f"{config_path}: {what}: {path} is not a PEM file")
    return data


def read_ssl_config(path: str):
    """The SSLConfig of a text-format file, its PEM fields read (from the files they name).

    Args:
        path: the file (TF Serving's `--ssl_config_file`).

    Returns:
        The SSLConfig message, each PEM field holding the PEM text.

    Raises:
        ValueError: the file cannot be read or parsed, server_key or server_cert is missing,
            a named PEM file cannot be read or is not PEM, or client_verify is set without a
            custom_ca.
    """
    try:
        with open(path) as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read --ssl_config_file {path}: {e}") from None
    config = SSLConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        raise ValueError(f"{path}: not a text-format SSLConfig: {e}") from None
    if not config.server_key or not config.server_cert:
        raise ValueError(f"{path}: an SSLConfig needs server_key and server_cert")
    if config.client_verify and not config.custom_ca:
        raise ValueError(f"{path}: client_verify needs custom_ca (the CA of the client "
                         "certificates)")
    folder = os.path.dirname(os.path.abspath(path))
    for field in ("server_key", "server_cert", "custom_ca"):
        value = getattr(config, field)
        if value:
            setattr(config, field, _pem(value, folder, field, path).decode())
    return config


def server_credentials(config) -> grpc.ServerCredentials:
    """gRPC server credentials of an SSLConfig (`read_ssl_config`).

    Args:
        config: the SSLConfig, its PEM fields holding PEM text.

    Returns:
        The credentials: the server's key and certificate; with client_verify, client
        certificates signed by custom_ca are required.
    """
    return grpc.ssl_server_credentials(
        [(config.server_key.encode(), config.server_cert.encode())],
        root_certificates=config.custom_ca.encode() or None,
        require_client_auth=config.client_verify)


def channel_credentials(ca_file: str, cert_file: str | None = None,
                        key_file: str | None = None) -> grpc.ChannelCredentials:
    """gRPC channel credentials trusting CA_FILE, with a client certificate if given.

    Args:
        ca_file: PEM file of the CA (or the self-signed certificate) the server's certificate
            must be signed by.
        cert_file: PEM file of the client's certificate (for a server with client_verify).
        key_file: PEM file of its private key.

    Returns:
        The credentials, for `grpc.secure_channel`.

    Raises:
        ValueError: a file cannot be read, or only one of CERT_FILE and KEY_FILE is given.
    """
    if (cert_file is None) != (key_file is None):
        raise ValueError("a client certificate needs both its certificate and its key file")

    def read(path):
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as e:
            raise ValueError(f"cannot read {path}: {e.strerror}") from None

    return grpc.ssl_channel_credentials(root_certificates=read(ca_file),
                                        private_key=read(key_file),
                                        certificate_chain=read(cert_file))
