"""`gexp fetch` against a real local server that injects faults (tests/encode_portal.py)."""

from __future__ import annotations

import gzip
import hashlib
import os
import threading

import pytest
from conftest import assert_user_error, run_gexp
from encode_portal import Server, ena_report, file_object, serve_encode_file

DATA = gzip.compress(os.urandom(300_000), compresslevel=0)  # ~300 kB, incompressible


@pytest.fixture
def portal():
    with Server() as s:
        yield s


@pytest.fixture
def storage():
    with Server() as s:
        yield s


def fetch(portal, *args):
    return run_gexp(
        "fetch",
        *args,
        "--encode-url",
        portal.url,
        "--ena-url",
        portal.url,
        "--retries",
        3,
        "--retry-wait",
        0.01,
    )


def encode_file(portal, storage, acc="ENCFF769VDQ", data=DATA):
    obj = file_object(
        "file_bed_narrowPeak_conservativeIDR_GRCh38_ENCFF769VDQ.json", acc, data, ".bed.gz"
    )
    serve_encode_file(portal, storage, obj, data)
    return obj, f"/bucket/{acc}/{acc}.bed.gz"


def assert_verified(path, data=DATA):
    assert path.read_bytes() == data
    assert (
        path.with_name(path.name + ".md5").read_text().split()[0] == hashlib.md5(data).hexdigest()
    )
    assert not path.with_name(path.name + ".part").exists()


def test_encode_file_follows_redirect_and_verifies(portal, storage, tmp_path):
    encode_file(portal, storage)
    out = tmp_path / "peaks.bed.gz"
    proc = fetch(portal, "ENCFF769VDQ", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    assert_verified(out)
    assert portal.hits("/files/ENCFF769VDQ/")[0].query.get("format") == ["json"]


def test_connection_dropped_mid_body_resumes_with_range(portal, storage, tmp_path):
    _, blob = encode_file(portal, storage)
    storage.faults[blob] = ["drop"]
    out = tmp_path / "p.bed.gz"
    proc = fetch(portal, "ENCFF769VDQ", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert_verified(out)
    first, second = storage.hits(blob)
    assert first.range is None and second.range.startswith("bytes=")
    offset = int(second.range[6:-1])
    assert 0 < offset <= len(DATA) // 3  # what arrived before the drop was kept
    assert f"resuming at byte {offset}" in proc.stderr


def test_truncated_body_is_completed(portal, storage, tmp_path):
    _, blob = encode_file(portal, storage)
    storage.faults[blob] = ["truncate", "truncate"]
    out = tmp_path / "p.bed.gz"
    proc = fetch(portal, "ENCFF769VDQ", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert_verified(out)
    assert len(storage.hits(blob)) == 3


def test_503_then_success(portal, storage, tmp_path):
    _, blob = encode_file(portal, storage)
    portal.faults["/files/ENCFF769VDQ/"] = ["503"]
    storage.faults[blob] = ["503", "503"]
    out = tmp_path / "p.bed.gz"
    proc = fetch(portal, "ENCFF769VDQ", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert_verified(out)
    assert "server error (503); retrying" in proc.stderr


def test_429_honours_retry_after(portal, storage, tmp_path):
    _, blob = encode_file(portal, storage)
    storage.faults[blob] = ["429"]
    out = tmp_path / "p.bed.gz"
    proc = fetch(portal, "ENCFF769VDQ", "--out", out)
    assert proc.returncode == 0, proc.stderr
    first, second = storage.hits(blob)
    assert second.time - first.time >= 0.95  # Retry-After: 1, although --retry-wait is 0.01
    assert_verified(out)


def test_wrong_md5_is_downloaded_again(portal, storage, tmp_path):
    _, blob = encode_file(portal, storage)
    storage.faults[blob] = ["corrupt"]
    out = tmp_path / "p.bed.gz"
    proc = fetch(portal, "ENCFF769VDQ", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "md5 mismatch" in proc.stderr
    assert_verified(out)
    assert storage.hits(blob)[1].range is None  # a corrupt file is not resumed


def test_md5_mismatch_after_retries_fails_and_leaves_nothing(portal, storage, tmp_path):
    _, blob = encode_file(portal, storage)
    storage.faults[blob] = ["corrupt"] * 4
    out = tmp_path / "p.bed.gz"
    proc = fetch(portal, "ENCFF769VDQ", "--out", out)
    assert_user_error(proc, "ENCFF769VDQ", "giving up after 3 retries", "md5 mismatch")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_connection_failures_exhaust_retries(portal, storage, tmp_path):
    _, blob = encode_file(portal, storage)
    storage.faults[blob] = ["truncate"] * 4
    out = tmp_path / "p.bed.gz"
    proc = fetch(portal, "ENCFF769VDQ", "--out", out)
    assert_user_error(proc, "giving up after 3 retries", "connection lost before the end")
    assert not out.exists() and not out.with_name(out.name + ".md5").exists()


def test_server_ignoring_range_restarts_cleanly(portal, storage, tmp_path):
    _, blob = encode_file(portal, storage)
    storage.faults[blob] = ["drop", "ignore-range"]
    out = tmp_path / "p.bed.gz"
    proc = fetch(portal, "ENCFF769VDQ", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert_verified(out)


def test_404_fails_clearly(portal, tmp_path):
    out = tmp_path / "p.bed.gz"
    proc = fetch(portal, "ENCFF000XYZ", "--out", out)
    assert_user_error(proc, "ENCFF000XYZ: not found (404)")
    assert list(tmp_path.iterdir()) == []
    assert len(portal.requests) == 1  # a 404 is not retried


@pytest.mark.parametrize(
    "source, message",
    [
        ("ENCSR552YGL", "ENCODE accession but not of a file"),
        ("hello", "not a local file, an http(s) URL, an ENCODE file accession"),
        ("ftp://ftp.sra.ebi.ac.uk/vol1/x.fastq.gz", "ftp:// is not supported"),
    ],
)
def test_unknown_source_strings(portal, tmp_path, source, message):
    proc = fetch(portal, source, "--out", tmp_path / "x")
    assert_user_error(proc, message)
    assert list(tmp_path.iterdir()) == [] and portal.requests == []


def test_credentials_go_to_the_portal_only(portal, storage, tmp_path, monkeypatch):
    _, blob = encode_file(portal, storage)
    monkeypatch.setenv("ENCODE_ACCESS_KEY", "KEY")
    monkeypatch.setenv("ENCODE_SECRET_KEY", "SECRET")
    proc = fetch(portal, "ENCFF769VDQ", "--out", tmp_path / "p.bed.gz")
    assert proc.returncode == 0, proc.stderr
    assert portal.requests and all(r.auth for r in portal.requests)
    assert storage.requests and not any(r.auth for r in storage.requests)


def test_verified_file_is_not_downloaded_again(portal, storage, tmp_path):
    encode_file(portal, storage)
    out = tmp_path / "p.bed.gz"
    assert fetch(portal, "ENCFF769VDQ", "--out", out).returncode == 0
    before = len(portal.requests) + len(storage.requests)
    proc = fetch(portal, "ENCFF769VDQ", "--out", out)
    assert proc.returncode == 0 and "already fetched" in proc.stderr
    assert len(portal.requests) + len(storage.requests) == before


def test_plain_url(storage, tmp_path):
    storage.blobs["/data/peaks.bed.gz"] = DATA
    storage.faults["/data/peaks.bed.gz"] = ["drop"]
    proc = run_gexp(
        "fetch", f"{storage.url}/data/peaks.bed.gz", "--outdir", tmp_path, "--retry-wait", 0.01
    )
    assert proc.returncode == 0, proc.stderr
    (path,) = [p for p in tmp_path.iterdir() if not p.name.endswith(".md5")]
    assert path.name.endswith("_peaks.bed.gz")
    assert_verified(path)


def test_local_path_is_validated_and_copied(tmp_path):
    src = tmp_path / "in.bed"
    src.write_bytes(b"chr1\t1\t2\n")
    proc = run_gexp("fetch", src, "--out", tmp_path / "out" / "copy.bed")
    assert proc.returncode == 0, proc.stderr
    assert_verified(tmp_path / "out" / "copy.bed", b"chr1\t1\t2\n")
    proc = run_gexp("fetch", tmp_path / "missing.bed", "--out", tmp_path / "x.bed")
    assert_user_error(proc, "missing.bed", "not a local file")


def test_sra_run_paired_end_from_ena(portal, storage, tmp_path):
    r1, r2 = gzip.compress(b"@r1\nACGT\n+\nIIII\n"), gzip.compress(b"@r1\nTTTT\n+\nIIII\n")
    host = storage.url.split("://")[1]
    portal.text["/portal/api/filereport"] = ena_report(
        [("SRR6213974", ["SRR6213974_1.fastq.gz", "SRR6213974_2.fastq.gz"], [r1, r2])], host
    )
    storage.blobs["/vol1/fastq/SRR6213974/SRR6213974_1.fastq.gz"] = r1
    storage.blobs["/vol1/fastq/SRR6213974/SRR6213974_2.fastq.gz"] = r2
    storage.faults["/vol1/fastq/SRR6213974/SRR6213974_2.fastq.gz"] = ["503"]
    out = tmp_path / "SRR6213974.fastq.gz"
    proc = fetch(portal, "SRR6213974", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert_verified(tmp_path / "SRR6213974_1.fastq.gz", r1)
    assert_verified(tmp_path / "SRR6213974_2.fastq.gz", r2)
    query = portal.hits("/portal/api/filereport")[0].query
    assert query["accession"] == ["SRR6213974"] and query["result"] == ["read_run"]
    assert "fastq_md5" in query["fields"][0]


def test_sra_run_unknown_to_ena(portal, tmp_path):
    portal.text["/portal/api/filereport"] = "run_accession\tfastq_ftp\tfastq_md5\tfastq_bytes\n"
    proc = fetch(portal, "SRR0000001", "--out", tmp_path / "x.fastq.gz")
    assert_user_error(proc, "SRR0000001: ENA has no such run")


def test_portal_requests_stay_under_ten_per_second(portal):
    from gexpcore.steps.fetch import Fetcher

    for i in range(25):
        portal.json[f"/files/ENCFF{i:03d}AAA/"] = {"accession": f"ENCFF{i:03d}AAA"}
    fetcher = Fetcher(encode_url=portal.url, retries=0)
    threads = [
        threading.Thread(target=fetcher.encode_json, args=(f"/files/ENCFF{i:03d}AAA/", "t"))
        for i in range(25)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    times = sorted(r.time for r in portal.requests)
    assert len(times) == 25
    for i in range(len(times) - 10):
        # the client spaces requests 0.1 s apart; allow for arrival jitter on a loaded machine
        assert times[i + 10] - times[i] >= 0.9, "more than 10 requests within one second"


def test_no_progress_bar_in_logs(portal, storage, tmp_path):
    encode_file(portal, storage)
    proc = fetch(portal, "ENCFF769VDQ", "--out", tmp_path / "p.bed.gz")
    assert proc.returncode == 0
    assert "%|" not in proc.stderr and "\r" not in proc.stderr


def test_access_denied_names_the_credentials(portal, tmp_path):
    portal.faults["/files/ENCFF000ABC/"] = ["403"]
    proc = fetch(portal, "ENCFF000ABC", "--out", tmp_path / "x.bed.gz")
    assert_user_error(proc, "ENCFF000ABC: access denied (403)", "ENCODE_ACCESS_KEY")
    assert list(tmp_path.iterdir()) == []


def test_downloads_go_through_the_environment_proxy(storage, tmp_path, monkeypatch):
    """Compute nodes often reach the internet only through HTTP(S)_PROXY (issue 15, P4): the
    request for an unresolvable host reaches the local server acting as that proxy."""
    storage.blobs["/data/peaks.bed.gz"] = DATA
    monkeypatch.setenv("HTTP_PROXY", storage.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    proc = run_gexp("fetch", "http://data.invalid/data/peaks.bed.gz", "--outdir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [r.path for r in storage.requests] == ["/data/peaks.bed.gz"]
    (path,) = [p for p in tmp_path.iterdir() if not p.name.endswith(".md5")]
    assert_verified(path)


def test_no_proxy_hosts_are_reached_directly(storage, tmp_path, monkeypatch):
    storage.blobs["/data/peaks.bed.gz"] = DATA
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    proc = run_gexp("fetch", f"{storage.url}/data/peaks.bed.gz", "--outdir", tmp_path)
    assert proc.returncode == 0, proc.stderr
