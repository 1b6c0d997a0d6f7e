"""Signed exports verify offline and catch any edit; a customer's proof verifies against a
digest alone; a later digest is proven to extend an earlier one."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

import crm_domain.audit.verifier as verifier_module
from adapters.cli import main
from adapters.exit_codes import EVIDENCE_INVALID, USAGE
from crm_domain import CRM
from crm_domain.audit.export import export_log
from crm_domain.audit.keys import generate_key_pair, load_signing_key
from crm_domain.audit.proofs import Digest, consistency, current_digest, prove_customer
from crm_domain.audit.verifier import VerificationFailedError, verify_export, verify_proof
from crm_domain.errors import AuditEvidenceError, ConfigurationError


@pytest.fixture
def crm(sqlite_url: str) -> CRM:
    crm = CRM(sqlite_url)
    for i in range(3):
        cid = crm.register_customer(kind="individual", name=f"P {i}", code=f"P-{i}")
        crm.log_contact(cid, channel="phone", direction="inbound", summary=f"about {i}")
    return crm


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "k.pem", tmp_path / "k.pub.pem"
    generate_key_pair(private, public)
    return private, public


def test_an_export_verifies_offline_and_any_edit_fails(
    crm: CRM, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, public = keys
    out = tmp_path / "export"
    manifest = export_log(crm, out, load_signing_key(private))
    assert (manifest["count"], manifest["first_position"]) == (9, 1)
    assert manifest["digest"] == str(current_digest(crm))
    assert verify_export(out, public.read_bytes())["final_hash"] == manifest["final_hash"]
    assert main(["audit", "verify-export", str(out), "--public-key", str(public)]) == 0

    # The standalone verifier, copied out of the package, needs no CRM code.
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(verifier_module.__file__, alone / "verifier.py")
    run = [sys.executable, "-c", "import sys, verifier; r = verifier.main(sys.argv[1:]); "
           "assert not [m for m in sys.modules if m.startswith('crm_domain')]; sys.exit(r)",
           "export", str(out), "--public-key", str(public)]  # fmt: skip
    assert subprocess.run(run, cwd=alone, capture_output=True).returncode == 0

    lines = (out / "events.jsonl").read_bytes().splitlines(keepends=True)
    edited = tmp_path / "edited"
    shutil.copytree(out, edited)
    (edited / "events.jsonl").write_bytes(b"".join(lines[:3] + lines[4:]))
    with pytest.raises(VerificationFailedError, match="SHA-256"):
        verify_export(edited, public.read_bytes())
    assert main(["audit", "verify-export", str(edited), "--public-key", str(public)]) == (
        EVIDENCE_INVALID
    )
    # A forger who also fixes the manifest's file hash cannot sign it.
    forged = json.loads((edited / "manifest.json").read_bytes())
    forged["events_sha256"] = "0" * 64
    (edited / "manifest.json").write_text(json.dumps(forged))
    with pytest.raises(VerificationFailedError, match="signature"):
        verify_export(edited, public.read_bytes())


def test_an_export_until_a_time_is_the_prefix_recorded_by_then(
    crm: CRM, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    cut = datetime.now(UTC)
    crm.register_customer(kind="individual", name="Later", code="P-later")
    manifest = export_log(crm, tmp_path / "e", load_signing_key(keys[0]), until=cut)
    assert manifest["count"] == 9
    assert verify_export(tmp_path / "e", keys[1].read_bytes())["last_position"] == 9


def test_export_until_from_the_command_line_needs_an_offset(
    crm: CRM, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    cut = datetime.now(UTC).astimezone().isoformat()
    crm.register_customer(kind="individual", name="Later", code="P-later")
    args = ["audit", "export", "--key", str(keys[0]), "--store", crm.store.url, "--out"]
    assert main([*args, str(tmp_path / "q"), "--until", cut]) == 0
    assert json.loads((tmp_path / "q" / "manifest.json").read_text())["count"] == 9
    assert main([*args, str(tmp_path / "n"), "--until", "2026-03-31T23:59:59"]) == USAGE


def test_a_signing_key_is_never_overwritten(keys: tuple[Path, Path]) -> None:
    with pytest.raises(ConfigurationError):
        generate_key_pair(*keys)


def test_a_customers_proof_verifies_against_the_digest_alone(crm: CRM, tmp_path: Path) -> None:
    customer = crm.customer_by_code("P-1").id
    digest = current_digest(crm)
    proof = prove_customer(crm, customer, digest)
    assert [e["originator_version"] for e in proof["events"]] == [1, 2]
    assert verify_proof(proof, str(digest)) == 2
    # Nothing of any other customer is in it.
    assert {e["originator_id"] for e in proof["events"]} == {customer.hex}
    # An edited event fails.
    proof["events"][1]["state_b64"] = proof["events"][0]["state_b64"]
    with pytest.raises(VerificationFailedError):
        verify_proof(proof, str(digest))
    # From the command line, by customer code.
    out = tmp_path / "p.json"
    assert main(["audit", "prove", "P-1", "--digest", str(digest), "--out", str(out),
                 "--store", crm.store.url]) == 0  # fmt: skip
    assert main(["audit", "verify-proof", str(out), "--digest", str(digest)]) == 0


def test_a_consistency_proof_file_verifies_offline(crm: CRM, tmp_path: Path) -> None:
    old = current_digest(crm)
    crm.register_customer(kind="individual", name="More", code="P-more")
    new = current_digest(crm)
    out = tmp_path / "extends.json"
    args = ["audit", "consistency", str(old), str(new), "--out", str(out), "--store"]
    assert main([*args, crm.store.url]) == 0
    assert verifier_module.verify_consistency_proof(json.loads(out.read_text()), str(old))
    assert main(["audit", "verify-consistency", str(out), "--old", str(old)]) == 0
    # Against a digest the auditor did not keep, or with the proof edited: refused.
    other = str(Digest(old.size, bytes(32)))
    assert main(["audit", "verify-consistency", str(out), "--old", other]) == EVIDENCE_INVALID
    document = json.loads(out.read_text())
    document["consistency_proof"][0] = "00" * 32
    out.write_text(json.dumps(document))
    assert main(["audit", "verify-consistency", str(out)]) == EVIDENCE_INVALID


def test_a_later_digest_is_proven_to_extend_an_earlier_one(crm: CRM) -> None:
    old = current_digest(crm)
    crm.register_customer(kind="individual", name="More", code="P-more")
    new = current_digest(crm)
    assert new.size == old.size + 2  # the customer and its code claim
    assert consistency(crm, old, new)
    forged = Digest(old.size, bytes(32))
    with pytest.raises(AuditEvidenceError):
        consistency(crm, forged, new)
    assert main(["audit", "consistency", str(forged), str(new), "--store", crm.store.url]) == (
        EVIDENCE_INVALID
    )
