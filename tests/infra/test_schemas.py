"""The vendored schemas are the published files, byte for byte (schemas/README.md names their source)."""

import hashlib
import re

from tests.infra.manifests import SCHEMAS


def test_vendored_schemas_match_the_checksums_in_their_readme() -> None:
    readme = (SCHEMAS / "README.md").read_text()
    rows = re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", readme, re.M)
    assert {name for name, _ in rows} == {p.name for p in SCHEMAS.iterdir() if p.suffix in (".json", ".yaml")}
    for name, digest in rows:
        assert hashlib.sha256((SCHEMAS / name).read_bytes()).hexdigest() == digest, name
