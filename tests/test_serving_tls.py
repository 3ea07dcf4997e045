"""gRPC over TLS: `ihas serve --ssl_config_file` (TF Serving's SSLConfig) and `ihas predict
--ssl_ca_file`, with a CA and certificates made here (the `cryptography` package)."""

import datetime
import ipaddress

import numpy as np
import pytest
import tensorflow as tf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ihas_cli import main as cli
from serving.client import GrpcPredictor, ServerError
from serving.models import model_config
from serving.server import ModelServer
from serving.tls import read_ssl_config
from tests.ctr_model import EXAMPLES, save_ctr


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key, issuer: str, issuer_key, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(obj) -> str:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM).decode()
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA; a server certificate (localhost, 127.0.0.1) and a client certificate it signed;
    a self-signed certificate of another CA; each written as a PEM file."""
    root = tmp_path_factory.mktemp("pki")
    ca_key, other_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1())
                                                 for _ in range(4))
    files = {
        "ca.pem": _certificate("ihas test CA", ca_key, "ihas test CA", ca_key, True),
        "other-ca.pem": _certificate("another CA", other_key, "another CA", other_key, True),
        "server.pem": _certificate("localhost", server_key, "ihas test CA", ca_key, False),
        "server.key": server_key,
        "client.pem": _certificate("a client", client_key, "ihas test CA", ca_key, False),
        "client.key": client_key,
    }
    for name, obj in files.items():
        (root / name).write_text(_pem(obj))
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls-model")
    save_ctr(str(root / "ctr" / "1"), 0.5)
    loaded = tf.saved_model.load(str(root / "ctr" / "1"))
    expected = loaded.signatures["serving_default"](examples=tf.constant(EXAMPLES))
    return str(root / "ctr"), {k: v.numpy() for k, v in expected.items()}


def _serve(model, config_text: str, tmp_path) -> ModelServer:
    config = tmp_path / "ssl.config"
    config.write_text(config_text)
    return ModelServer([model_config("ctr", model[0])], grpc_port=0, rest_port=None,
                       host="127.0.0.1", poll_wait_seconds=0,
                       ssl_config=read_ssl_config(str(config))).start()


def _text_field(name: str, pem: str) -> str:
    return f"{name}: {pem!r}\n".replace("'", '"')  # repr's \n escapes are text format's


def test_tls_with_the_pem_text_in_the_config(pki, model, tmp_path):
    """TF Serving's form: the PEM text itself in server_key and server_cert."""
    srv = _serve(model, _text_field("server_key", (pki / "server.key").read_text())
                 + _text_field("server_cert", (pki / "server.pem").read_text()), tmp_path)
    try:
        address = f"127.0.0.1:{srv.grpc_port}"
        predictor = GrpcPredictor(address, "ctr", None, 30, ca_file=str(pki / "ca.pem"))
        probability, cluster = predictor(EXAMPLES)
        predictor.close()
        np.testing.assert_array_equal(probability, model[1]["probability"])
        np.testing.assert_array_equal(cluster, model[1]["cluster"])
        for untrusted in (GrpcPredictor(address, "ctr", None, 5),  # plain text to a TLS port
                          GrpcPredictor(address, "ctr", None, 5,
                                        ca_file=str(pki / "other-ca.pem"))):
            with pytest.raises(ServerError, match="UNAVAILABLE"):
                untrusted(EXAMPLES)
            untrusted.close()
    finally:
        srv.stop()


def test_client_verify_requires_a_client_certificate(pki, model, tmp_path):
    """Fields naming PEM files (relative to the config's folder); client_verify: only a
    client with a certificate signed by custom_ca is answered."""
    srv = _serve(model, f'server_key: "{pki / "server.key"}"\nserver_cert: "{pki / "server.pem"}"'
                 f'\ncustom_ca: "{pki / "ca.pem"}"\nclient_verify: true\n', tmp_path)
    try:
        address = f"127.0.0.1:{srv.grpc_port}"
        with_cert = GrpcPredictor(address, "ctr", None, 30, ca_file=str(pki / "ca.pem"),
                                  cert_file=str(pki / "client.pem"),
                                  key_file=str(pki / "client.key"))
        np.testing.assert_array_equal(with_cert(EXAMPLES)[0], model[1]["probability"])
        with_cert.close()
        without = GrpcPredictor(address, "ctr", None, 5, ca_file=str(pki / "ca.pem"))
        with pytest.raises(ServerError, match="UNAVAILABLE"):
            without(EXAMPLES)
        without.close()
    finally:
        srv.stop()


@pytest.mark.parametrize("text, message", [
    ("server_key: ", "not a text-format SSLConfig"),
    ('server_cert: "server.pem"', "needs server_key and server_cert"),
    ('server_key: "server.key" server_cert: "server.pem" client_verify: true',
     "client_verify needs custom_ca"),
    ('server_key: "nope.key" server_cert: "server.pem"', "nope.key"),
    ('server_key: "server.key" server_cert: "ca.config"', "is not a PEM file"),
])
def test_bad_ssl_config_files(pki, text, message, capsys):
    config = pki / "ca.config"
    config.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_ssl_config(str(config))
    assert cli.main(["serve", "--model_base_path", str(pki), "--ssl_config_file",
                     str(config)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(config) in err and len(err.strip().splitlines()) == 1


def test_predict_tls_flags(pki, tmp_path, capsys):
    rows = tmp_path / "rows.txt"
    rows.write_text("")
    assert cli.main(["predict", "--rest", "--ssl_ca_file", str(pki / "ca.pem"), "--format",
                     "criteo", str(rows)]) == 2
    assert "--ssl_* options are for gRPC" in capsys.readouterr().err
    assert cli.main(["predict", "--ssl_client_cert_file", str(pki / "client.pem"),
                     "--format", "criteo", str(rows)]) == 2
    assert "--ssl_ca_file" in capsys.readouterr().err
    assert cli.main(["predict", "--ssl_ca_file", str(tmp_path / "none.pem"), "--format",
                     "criteo", str(rows)]) == 2
    assert "none.pem" in capsys.readouterr().err
