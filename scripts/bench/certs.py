#!/usr/bin/env python3
"""Benchmark: issuing Fabric's per-launch client certificates, against raw ECDSA signing.

Issuing one certificate costs a P-256 key generation, one ECDSA signature by the CA and the
encoding. The floor is the signature alone: N raw ECDSA P-256/SHA-256 signatures over
certificate-sized data, measured in the same run and the same process. Rounds alternate the
two so drift hits both; the medians are reported with their ratio, which is the figure to
quote: these machines are noisy, absolute rates are not comparable across runs.

    .venv/bin/python scripts/bench/certs.py [-n 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ccdaemon.runtime.certs import ChaincodeCA

TBS_SIZE = 400  # about the size of a client certificate's to-be-signed part


def issue_certs(ca: ChaincodeCA, count: int) -> float:
    """Issue ``count`` client certificates; return the seconds taken."""
    start = time.perf_counter()
    for _ in range(count):
        ca.issue()
    return time.perf_counter() - start


def raw_signatures(key: ec.EllipticCurvePrivateKey, count: int) -> float:
    """Make ``count`` ECDSA P-256/SHA-256 signatures; return the seconds taken."""
    data = os.urandom(TBS_SIZE)
    algorithm = ec.ECDSA(hashes.SHA256())
    start = time.perf_counter()
    for _ in range(count):
        key.sign(data, algorithm)
    return time.perf_counter() - start


def main() -> None:
    """Run the rounds and print rates and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", type=int, default=1000, help="operations per round (1000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each (5)")
    args = parser.parse_args()
    count: int = args.n

    ca = ChaincodeCA.generate()
    key = ec.generate_private_key(ec.SECP256R1())
    issue_certs(ca, 20)  # warm up: first calls load the backend's code paths
    raw_signatures(key, 20)

    cert_rates: list[float] = []
    sign_rates: list[float] = []
    for round_no in range(args.rounds):
        # Alternate which goes first, so neither always runs on a warmer or cooler CPU.
        if round_no % 2:
            sign_rates.append(count / raw_signatures(key, count))
            cert_rates.append(count / issue_certs(ca, count))
        else:
            cert_rates.append(count / issue_certs(ca, count))
            sign_rates.append(count / raw_signatures(key, count))

    certs = statistics.median(cert_rates)
    signs = statistics.median(sign_rates)
    print(f"{count} ops x {args.rounds} rounds, median rate per round")
    print(f"client certs issued : {certs:9.0f} /s  ({1000 / certs:.3f} ms each)")
    print(f"raw ECDSA signatures: {signs:9.0f} /s  ({1000 / signs:.3f} ms each)")
    print(f"ratio certs/signatures: {certs / signs:.2f}")


if __name__ == "__main__":
    main()
