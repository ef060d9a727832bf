#!/usr/bin/env python3
"""Regenerate the certificate-path fixtures for tests/cert_paths.rs.

    cd crates/glassbox-trust/tests/pki && python3 make.py

Needs the `cryptography` package (tested with 48; any version with
`not_valid_before`/`not_valid_after` builders works). Everything here is test-only
and regenerated from scratch on every run: new keys, new certificates, so the
committed PEMs change. The CA private keys are not written anywhere; only the
one leaf key the tests sign with (`leaf.key`, P-256) is.

Outputs (every `chain-*.pem` is what a bundle carries: leaf first, then the
intermediates; the anchors are separate files, as the user supplies them):

  root-rsa.pem    RSA-3072 root, cA, keyCertSign, no pathLen
  root-ec.pem     P-521 root, cA, keyCertSign, pathLen 1
  anchor-ee.pem   the end-entity certificate of chain-ee-issuer.pem, used as an anchor
  chain-good-rsa.pem     leaf <- int-a (P-384, pathLen 0, sha256WithRSA) <- root-rsa     VALID
  chain-good-ec.pem      leaf <- int-b (P-256, ecdsa-with-SHA512) <- root-ec            VALID
  chain-ee-issuer.pem    leaf <- ee (cA=false, signed by root-rsa)                      refused
  chain-pathlen-int.pem  leaf <- int-deep <- int-a (pathLen 0)  [anchor root-rsa]       refused
  chain-pathlen-root.pem leaf <- int-deep2 <- int-b  [anchor root-ec, pathLen 1]        refused
  chain-expired-int.pem  leaf <- int-expired (2020..2021) <- root-rsa                   refused
  chain-no-eku.pem       leaf without extendedKeyUsage <- int-a                         refused
  chain-eku-server.pem   leaf with EKU serverAuth only <- int-a                         refused
  chain-no-certsign.pem  leaf <- int-nocertsign (cA=true, keyUsage digitalSignature only) refused
  chain-misnamed.pem     leaf whose issuer name is not int-a's subject, signed by int-a refused
  leaf.key        the P-256 key of every leaf (PKCS#8)
  model/, model-good-rsa.sig, model-good-ec.sig
                  a tiny model signed by the `model-signing` package itself (certificate method,
                  proper root -> intermediate -> leaf chains above); made only when the
                  `model_signing` CLI is on PATH or named by $MODEL_SIGNING:
                      python3 -m venv /tmp/ms && /tmp/ms/bin/pip install model-signing==1.1.1 pyopenssl
                      MODEL_SIGNING=/tmp/ms/bin/model_signing python3 make.py

Valid certificates run 2025-01-01 .. 2125-01-01 so the tests stay green.
"""

import datetime as dt
import os
import shutil
import subprocess
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
START = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
END = dt.datetime(2125, 1, 1, tzinfo=dt.timezone.utc)


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def ku(cert_sign=False, digital_signature=False):
    return x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
        crl_sign=cert_sign, encipher_only=False, decipher_only=False)


def cert(subject, key, issuer_name, issuer_key, hash_alg, *, ca, path_len=None, key_usage=None,
         eku=(ExtendedKeyUsageOID.CODE_SIGNING,), start=START, end=END):
    b = (x509.CertificateBuilder()
         .subject_name(name(subject)).issuer_name(name(issuer_name))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(start).not_valid_after(end)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=path_len), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if key_usage is None:
        key_usage = ku(cert_sign=True) if ca else ku(digital_signature=True)
    b = b.add_extension(key_usage, critical=True)
    if not ca and eku:
        b = b.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    return b.sign(issuer_key, hash_alg)


def pem(*certs):
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def write(fname, data):
    with open(os.path.join(HERE, fname), "wb") as f:
        f.write(data)


def main():
    sha256, sha384, sha512 = hashes.SHA256(), hashes.SHA384(), hashes.SHA512()
    leaf_key = ec.generate_private_key(ec.SECP256R1())

    root_rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    root_rsa = cert("glassbox test root rsa", root_rsa_key, "glassbox test root rsa", root_rsa_key, sha256, ca=True)
    root_ec_key = ec.generate_private_key(ec.SECP521R1())
    root_ec = cert("glassbox test root ec", root_ec_key, "glassbox test root ec", root_ec_key, sha512, ca=True, path_len=1)

    int_a_key = ec.generate_private_key(ec.SECP384R1())
    int_a = cert("glassbox test intermediate a", int_a_key, "glassbox test root rsa", root_rsa_key, sha256, ca=True, path_len=0)
    int_b_key = ec.generate_private_key(ec.SECP256R1())
    int_b = cert("glassbox test intermediate b", int_b_key, "glassbox test root ec", root_ec_key, sha512, ca=True)

    def leaf(cn, issuer_name, issuer_key, hash_alg, **kw):
        return cert(cn, leaf_key, issuer_name, issuer_key, hash_alg, ca=False, **kw)

    # The two valid paths.
    write("chain-good-rsa.pem", pem(leaf("model signer a", "glassbox test intermediate a", int_a_key, sha384), int_a))
    write("chain-good-ec.pem", pem(leaf("model signer b", "glassbox test intermediate b", int_b_key, sha256), int_b))

    # (a) An end-entity certificate issuing the leaf.
    ee_key = ec.generate_private_key(ec.SECP256R1())
    ee = cert("glassbox test end entity", ee_key, "glassbox test root rsa", root_rsa_key, sha256, ca=False)
    write("chain-ee-issuer.pem", pem(leaf("signed by an end entity", "glassbox test end entity", ee_key, sha256), ee))
    write("anchor-ee.pem", pem(ee))

    # (b) pathLen exceeded: below an intermediate (int-a, pathLen 0) and below the anchor (root-ec, pathLen 1).
    deep_key = ec.generate_private_key(ec.SECP256R1())
    deep = cert("glassbox test intermediate deep", deep_key, "glassbox test intermediate a", int_a_key, sha384, ca=True)
    write("chain-pathlen-int.pem", pem(leaf("too deep below a", "glassbox test intermediate deep", deep_key, sha256), deep, int_a))
    deep2_key = ec.generate_private_key(ec.SECP256R1())
    deep2 = cert("glassbox test intermediate deep2", deep2_key, "glassbox test intermediate b", int_b_key, sha256, ca=True)
    write("chain-pathlen-root.pem", pem(leaf("too deep below root ec", "glassbox test intermediate deep2", deep2_key, sha256), deep2, int_b))

    # (c) An expired intermediate (the leaf itself is valid).
    old_key = ec.generate_private_key(ec.SECP256R1())
    old = cert("glassbox test intermediate expired", old_key, "glassbox test root rsa", root_rsa_key, sha256, ca=True,
               start=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc), end=dt.datetime(2021, 1, 1, tzinfo=dt.timezone.utc))
    write("chain-expired-int.pem", pem(leaf("below an expired intermediate", "glassbox test intermediate expired", old_key, sha256), old))

    # (d) Leaves without the code-signing extended key usage.
    write("chain-no-eku.pem", pem(leaf("no eku", "glassbox test intermediate a", int_a_key, sha384, eku=()), int_a))
    write("chain-eku-server.pem", pem(leaf("server auth only", "glassbox test intermediate a", int_a_key, sha384,
                                           eku=(ExtendedKeyUsageOID.SERVER_AUTH,)), int_a))

    # An issuer with cA=true whose keyUsage does not allow certificate signing.
    nks_key = ec.generate_private_key(ec.SECP256R1())
    nks = cert("glassbox test intermediate no certsign", nks_key, "glassbox test root rsa", root_rsa_key, sha256, ca=True,
               key_usage=ku(digital_signature=True))
    write("chain-no-certsign.pem", pem(leaf("below a ca without keycertsign", "glassbox test intermediate no certsign", nks_key, sha256), nks))

    # Names that do not chain: signed by int-a's key, but naming another issuer.
    write("chain-misnamed.pem", pem(leaf("misnamed issuer", "glassbox test somebody else", int_a_key, sha384), int_a))

    write("root-rsa.pem", pem(root_rsa))
    write("root-ec.pem", pem(root_ec))
    write("leaf.key", leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    sign_with_model_signing()


def sign_with_model_signing():
    """Sign model/ with the model-signing package, once per valid chain, and check it verifies there."""
    cli = os.environ.get("MODEL_SIGNING") or shutil.which("model_signing")
    if not cli:
        print("model_signing not found: model-*.sig not regenerated")
        return
    model = os.path.join(HERE, "model")
    os.makedirs(model, exist_ok=True)
    write("model/weights.bin", b"certificate-method test weights\n")
    write("model/config.json", b'{"arch": "tiny"}\n')
    for chain, root in [("good-rsa", "root-rsa.pem"), ("good-ec", "root-ec.pem")]:
        with open(os.path.join(HERE, f"chain-{chain}.pem"), "rb") as f:
            certs = x509.load_pem_x509_certificates(f.read())
        with tempfile.TemporaryDirectory() as tmp:
            leaf, rest = os.path.join(tmp, "leaf.pem"), os.path.join(tmp, "chain.pem")
            with open(leaf, "wb") as f:
                f.write(pem(certs[0]))
            with open(rest, "wb") as f:
                f.write(pem(*certs[1:]))
            sig = os.path.join(HERE, f"model-{chain}.sig")
            subprocess.run([cli, "sign", "certificate", model, "--private_key", os.path.join(HERE, "leaf.key"),
                            "--signing_certificate", leaf, "--certificate_chain", rest, "--signature", sig], check=True)
            subprocess.run([cli, "verify", "certificate", model, "--signature", sig,
                            "--certificate_chain", os.path.join(HERE, root)], check=True)


if __name__ == "__main__":
    main()
