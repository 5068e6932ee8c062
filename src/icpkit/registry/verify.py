r"""Verify a registered icpkit model before loading it: ``python -m icpkit.registry.verify URI``.

Example::

    MLFLOW_TRACKING_URI=sqlite:///mlruns/mlflow.db \
        python -m icpkit.registry.verify models:/icp-scorer@champion --dst ./icp-scorer

Exit 0: every file matches the SHA-256 manifest recorded at registration (with ``--dst`` the
verified copy is kept there: load *that* folder with ``mlflow.pyfunc.load_model``). Exit 2: a
file differs, was added or is missing, or the version carries no manifest; nothing was run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence

from icpkit.errors import ICPKitError
from icpkit.secrets import mask_secrets


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the check; returns the exit code (0 verified, 2 refused)."""
    parser = argparse.ArgumentParser(
        prog="python -m icpkit.registry.verify", description=__doc__.split("\n")[0]
    )
    parser.add_argument("model_uri", help="models:/<name>@<alias> or models:/<name>/<version>")
    parser.add_argument("--tracking-uri", help="default: MLFLOW_TRACKING_URI")
    parser.add_argument("--dst", help="keep the verified copy in this (new or empty) folder")
    args = parser.parse_args(argv)
    uri = args.tracking_uri or (environ or {}).get("MLFLOW_TRACKING_URI")
    if not uri:
        print("error: pass --tracking-uri or set MLFLOW_TRACKING_URI", file=sys.stderr)
        return 2
    from icpkit.registry.store import check_tracking
    from icpkit.registry.verification import download_verified

    try:
        check_tracking(uri)
        if args.dst:
            verified = download_verified(uri, args.model_uri, args.dst)
        else:
            with tempfile.TemporaryDirectory(prefix="icpkit-verify-") as tmp:
                verified = download_verified(uri, args.model_uri, tmp)
    except ICPKitError as err:
        print(f"REFUSED {mask_secrets(str(err))}", file=sys.stderr)
        return 2
    kept = f"; verified copy in {args.dst}" if args.dst else ""
    label = f"models:/{verified.name}/{verified.version}"
    print(f"OK {label} ({args.model_uri}): {verified.n_files} files match the recorded SHA-256{kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main(environ=os.environ))
