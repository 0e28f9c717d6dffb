"""Downloading public data that survives the network: `gexp fetch`.

A source is a local path, an http(s) URL, an ENCODE file accession (ENCFF…) or an
SRA/ENA run (SRR/ERR/DRR…). Every download streams to `<target>.part`, resumes a
partial file with an HTTP Range request, is checked against the expected size and
md5, and only then renamed to its target with an `.md5` sidecar; a file at the
target is therefore always verified, and a verified target is reused without any
network traffic. Transient failures (connection errors, truncated bodies, 429,
5xx) are retried with exponential backoff, honouring Retry-After. Requests to
the ENCODE portal stay under its limit of 10 per second, and ENCODE credentials
(ENCODE_ACCESS_KEY/ENCODE_SECRET_KEY) are sent to the portal only, never to the
storage host its downloads redirect to.
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import logging
import os
import re
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests

from ..errors import GexpError

log = logging.getLogger("gexp")

ENCODE_URL = "https://www.encodeproject.org"
ENA_URL = "https://www.ebi.ac.uk/ena"
ENCODE_FILE = re.compile(r"^ENCFF[0-9]{3}[A-Z]{3}$")
SRA_RUN = re.compile(r"^[SED]RR[0-9]{6,}$")
URL = re.compile(r"^https?://", re.I)
ENCODE_RPS = 10.0
CHUNK = 1 << 16  # what a dropped connection can cost: the resume starts at a chunk edge


class Retryable(Exception):
    """A failure worth another try: the network, a server hiccup, a corrupt transfer."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Remote:
    """One file to download and what it must be once downloaded."""

    url: str
    name: str
    md5: str | None = None
    size: int | None = None


class RateLimiter:
    """At most `rate` requests per second, across threads."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.lock = threading.Lock()
        self.next_time = 0.0

    def wait(self) -> None:
        with self.lock:
            now = time.monotonic()
            delay = self.next_time - now
            self.next_time = max(now, self.next_time) + self.interval
        if delay > 0:
            time.sleep(delay)


def kind_of(source: str) -> str:
    if ENCODE_FILE.match(source):
        return "encode"
    if SRA_RUN.match(source):
        return "sra"
    if URL.match(source):
        return "url"
    if Path(source).expanduser().exists():
        return "local"
    if source.lower().startswith("ftp://"):
        raise GexpError(f"'{source}': ftp:// is not supported; use the https:// address")
    if re.match(r"^ENC[A-Z]{2}[0-9]{3}[A-Z]{3}$", source):
        raise GexpError(f"'{source}' is an ENCODE accession but not of a file; give an ENCFF… file")
    raise GexpError(
        f"'{source}' is not a local file, an http(s) URL, an ENCODE file accession (ENCFF…) "
        "or an SRA/ENA run (SRR/ERR/DRR…)"
    )


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".md5")


def is_verified(path: Path) -> bool:
    """A target with a sidecar whose md5 it still has."""
    side = sidecar(path)
    if not path.is_file() or not side.is_file():
        return False
    recorded = side.read_text().split()
    return bool(recorded) and recorded[0] == md5sum(path)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time()) if when else None


def mate_name(name: str, mate: int) -> str:
    """`SRR1.fastq.gz` → `SRR1_1.fastq.gz`: where a run's mates go."""
    stem, dot, rest = name.partition(".")
    return f"{stem}_{mate}{dot}{rest}"


def default_name(source: str) -> str:
    """The file name a source is stored under in a fetch folder (before metadata is known)."""
    kind = kind_of(source)
    if kind in ("encode", "sra"):
        return source
    path = urlsplit(source).path if kind == "url" else source
    base = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(path.rstrip("/"))) or "download"
    if kind == "url":
        base = f"{hashlib.sha1(source.encode()).hexdigest()[:8]}_{base}"
    return base


def write_stub(source: str, outdir: Path) -> list[Path]:
    """What `-stub` runs fetch: an empty gzip under the name a real fetch of `source` is
    stored under (accessions get a `.stub.gz` extension, which only metadata would tell), with
    its md5 sidecar, so that the localise step finds it as it finds real downloads."""
    from ..files import atomic_write

    name = default_name(source)
    if kind_of(source) in ("encode", "sra"):
        name += ".stub.gz"
    target = Path(outdir) / name
    with atomic_write(target, "wb"):
        pass
    with atomic_write(sidecar(target)) as fh:
        fh.write(f"{md5sum(target)}  {target.name}\n")
    return [target]


class Fetcher:
    def __init__(
        self,
        encode_url: str | None = None,
        ena_url: str | None = None,
        retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        timeout: float = 60.0,
        progress: bool | None = None,
    ) -> None:
        encode_url = encode_url or os.environ.get("GEXP_ENCODE_URL") or ENCODE_URL
        self.encode_url = encode_url.rstrip("/")
        self.ena_url = (ena_url or os.environ.get("GEXP_ENA_URL") or ENA_URL).rstrip("/")
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self.timeout = timeout
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "gexp (https://github.com/gexp)"
        # No .netrc credentials sent anywhere; proxies are taken from the environment by hand
        # (_proxies), since compute nodes often reach the internet only through one.
        self.session.trust_env = False
        key, secret = os.environ.get("ENCODE_ACCESS_KEY"), os.environ.get("ENCODE_SECRET_KEY")
        self.encode_auth = (key, secret) if key and secret else None
        self.encode_limit = RateLimiter(ENCODE_RPS)

    # -- HTTP -------------------------------------------------------------------------------

    def _is_portal(self, url: str) -> bool:
        a, b = urlsplit(url), urlsplit(self.encode_url)
        return (a.scheme, a.netloc) == (b.scheme, b.netloc)

    @staticmethod
    def _proxies(url: str) -> dict[str, str]:
        """HTTP(S)_PROXY / ALL_PROXY for this URL, unless NO_PROXY names its host."""
        if requests.utils.should_bypass_proxies(url, no_proxy=None):
            return {}
        return requests.utils.get_environ_proxies(url, no_proxy=None)

    def _get(self, url: str, what: str, headers: dict | None = None) -> requests.Response:
        """GET following redirects by hand, so credentials never leave the portal."""
        for _ in range(10):
            portal = self._is_portal(url)
            if portal:
                self.encode_limit.wait()
            try:
                resp = self.session.get(
                    url,
                    headers=headers or {},
                    stream=True,
                    allow_redirects=False,
                    timeout=self.timeout,
                    auth=self.encode_auth if portal else None,
                    proxies=self._proxies(url),
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise Retryable(f"connection failed ({exc.__class__.__name__})") from None
            if resp.status_code in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                resp.close()
                url = urljoin(url, resp.headers["Location"])
                continue
            if resp.status_code == 429:
                resp.close()
                raise Retryable("rate limited (429)", _retry_after(resp.headers.get("Retry-After")))
            if resp.status_code >= 500:
                resp.close()
                raise Retryable(
                    f"server error ({resp.status_code})",
                    _retry_after(resp.headers.get("Retry-After")),
                )
            if resp.status_code == 404:
                raise GexpError(f"{what}: not found (404) at {url}")
            if resp.status_code in (401, 403):
                raise GexpError(
                    f"{what}: access denied ({resp.status_code}) at {url}; unreleased ENCODE "
                    "files need ENCODE_ACCESS_KEY and ENCODE_SECRET_KEY"
                )
            if resp.status_code >= 400 and resp.status_code != 416:
                raise GexpError(f"{what}: HTTP {resp.status_code} at {url}")
            return resp
        raise GexpError(f"{what}: too many redirects from {url}")

    def _with_retries(self, what: str, action):
        for attempt in range(self.retries + 1):
            try:
                return action()
            except Retryable as exc:
                if attempt == self.retries:
                    raise GexpError(
                        f"{what}: giving up after {self.retries} retries: {exc}"
                    ) from None
                wait = min(self.max_backoff, self.backoff * 2**attempt)
                if exc.retry_after is not None:
                    wait = max(wait, exc.retry_after)
                log.warning("%s: %s; retrying in %.1f s", what, exc, wait)
                time.sleep(wait)
        raise AssertionError("unreachable")

    def _json(self, url: str, what: str) -> dict:
        def get() -> dict:
            resp = self._get(url, what, {"Accept": "application/json"})
            try:
                return resp.json()
            except (ValueError, requests.RequestException) as exc:
                raise Retryable(f"unreadable JSON ({exc.__class__.__name__})") from None
            finally:
                resp.close()

        return self._with_retries(what, get)

    def _text(self, url: str, what: str) -> str:
        def get() -> str:
            resp = self._get(url, what)
            try:
                return resp.text
            except requests.RequestException as exc:
                raise Retryable(f"transfer failed ({exc.__class__.__name__})") from None
            finally:
                resp.close()

        return self._with_retries(what, get)

    # -- metadata ---------------------------------------------------------------------------

    def encode_json(self, path: str, what: str) -> dict:
        """A portal object or search page (path like /files/ENCFF…/)."""
        sep = "&" if "?" in path else "?"
        return self._json(f"{self.encode_url}{path}{sep}format=json", what)

    def resolve(self, source: str) -> list[Remote]:
        kind = kind_of(source)
        if kind == "encode":
            meta = self.encode_json(f"/files/{source}/", source)
            if meta.get("no_file_available"):
                raise GexpError(f"{source}: the ENCODE portal has no file for this accession")
            href = meta.get("href")
            if not href:
                raise GexpError(f"{source}: ENCODE metadata has no download href")
            status = meta.get("status")
            if status in ("revoked", "deleted", "replaced"):
                log.warning("%s: ENCODE status is '%s'", source, status)
            return [
                Remote(
                    urljoin(self.encode_url + "/", href),
                    os.path.basename(href),
                    meta.get("md5sum"),
                    meta.get("file_size"),
                )
            ]
        if kind == "sra":
            return self._ena_run(source)
        if kind == "url":
            return [Remote(source, default_name(source))]
        raise AssertionError(kind)

    def _ena_run(self, run: str) -> list[Remote]:
        url = (
            f"{self.ena_url}/portal/api/filereport?accession={run}&result=read_run"
            "&fields=run_accession,fastq_ftp,fastq_md5,fastq_bytes&format=tsv"
        )
        lines = [ln for ln in self._text(url, run).splitlines() if ln.strip()]
        if len(lines) < 2:
            raise GexpError(f"{run}: ENA has no such run")
        row = dict(zip(lines[0].split("\t"), lines[1].split("\t"), strict=False))
        files = [f for f in row.get("fastq_ftp", "").split(";") if f]
        if not files:
            raise GexpError(f"{run}: ENA lists no FASTQ files for this run")
        md5s = row.get("fastq_md5", "").split(";")
        sizes = row.get("fastq_bytes", "").split(";")
        scheme = urlsplit(self.ena_url).scheme
        remotes = [
            Remote(
                f if "://" in f else f"{scheme}://{f}",
                os.path.basename(f),
                md5s[i] if i < len(md5s) and md5s[i] else None,
                int(sizes[i]) if i < len(sizes) and sizes[i].isdigit() else None,
            )
            for i, f in enumerate(files)
        ]
        mates = [r for r in remotes if re.search(r"_[12]\.f(ast)?q(\.gz)?$", r.name)]
        return sorted(mates, key=lambda r: r.name) if len(mates) == 2 else remotes[:1]

    # -- downloads --------------------------------------------------------------------------

    def download(self, remote: Remote, dest: Path, what: str) -> Path:
        """Verified file at `dest`, or an error and nothing at `dest`."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")

        def attempt() -> None:
            self._stream(remote, part, what)
            size = part.stat().st_size
            if remote.size is not None and size != remote.size:
                if size > remote.size:
                    part.unlink()
                raise Retryable(f"size {size} bytes, expected {remote.size}")
            if remote.md5:
                actual = md5sum(part)
                if actual != remote.md5:
                    part.unlink()
                    raise Retryable(f"md5 mismatch (got {actual}, expected {remote.md5})")

        self._with_retries(what, attempt)
        digest = remote.md5 or md5sum(part)
        side_tmp = sidecar(dest).with_name(sidecar(dest).name + ".part")
        side_tmp.write_text(f"{digest}  {dest.name}\n")
        os.replace(part, dest)
        os.replace(side_tmp, sidecar(dest))
        log.info("%s: %s verified (%s)", what, dest.name, "md5" if remote.md5 else "md5 recorded")
        return dest

    def _stream(self, remote: Remote, part: Path, what: str) -> None:
        offset = part.stat().st_size if part.exists() else 0
        if remote.size is not None and offset > remote.size:
            part.unlink()
            offset = 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = self._get(remote.url, what, headers)
        with resp:
            if resp.status_code == 416:
                if remote.size is not None and offset == remote.size:
                    return
                part.unlink(missing_ok=True)
                raise Retryable("range not satisfiable; restarting")
            if resp.status_code == 206:
                start = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
                if not start or int(start.group(1)) != offset:
                    part.unlink(missing_ok=True)
                    raise Retryable("server resumed at the wrong offset; restarting")
                mode = "ab"
                log.info("%s: resuming at byte %d", what, offset)
            else:
                mode, offset = "wb", 0
            expected = resp.headers.get("Content-Length")
            total = remote.size or (offset + int(expected) if expected else None)
            written = 0
            bar = _progress(self.progress, total, offset, remote.name)
            with open(part, mode) as fh, bar:
                try:
                    for chunk in resp.iter_content(CHUNK):
                        fh.write(chunk)
                        written += len(chunk)
                        bar.update(len(chunk))
                except (requests.RequestException, OSError):
                    raise Retryable("connection lost before the end of the file") from None
            if expected is not None and written < int(expected):
                raise Retryable(f"body ended after {written} of {expected} bytes")

    def fetch(self, source: str, out: Path | None = None, outdir: Path | None = None) -> list[Path]:
        """Download (or validate) one source; return the verified local file(s)."""
        kind = kind_of(source)
        if kind == "local":
            return [self._local(source, out, outdir)]
        folder = Path(outdir) if outdir else Path(out).parent
        cached = cached_files(source, folder) if outdir else _cached_out(source, Path(out))
        if cached:
            log.info("%s: already fetched and verified, skipped", source)
            return cached
        remotes = self.resolve(source)
        targets = []
        for i, remote in enumerate(remotes, start=1):
            if outdir:
                target = folder / remote.name
            elif len(remotes) == 1:
                target = Path(out)
            else:
                target = Path(out).with_name(mate_name(Path(out).name, i))
            targets.append(self.download(remote, target, source))
        return targets

    def _local(self, source: str, out: Path | None, outdir: Path | None) -> Path:
        from ..files import require_file

        path = require_file(Path(source).expanduser(), "source")
        if out is None and outdir is None:
            return path
        target = Path(out) if out else Path(outdir) / path.name
        if target.resolve() == path.resolve():
            return path
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        shutil.copyfile(path, part)
        sidecar(target).write_text(f"{md5sum(part)}  {target.name}\n")
        os.replace(part, target)
        return target


def _cached_out(source: str, out: Path) -> list[Path]:
    if is_verified(out):
        return [out]
    mates = [out.with_name(mate_name(out.name, i)) for i in (1, 2)]
    return mates if all(is_verified(m) for m in mates) else []


def cached_files(source: str, folder: Path, verify: bool = True) -> list[Path]:
    """Files of `source` in a fetch folder (named by `Fetcher.fetch(outdir=…)`).

    With `verify`, each must still match its md5 sidecar; without, a sidecar must exist
    (the fetch step wrote it only after verifying), which spares re-reading large files.
    """
    if not folder.is_dir():
        return []
    ok = is_verified if verify else (lambda p: p.is_file() and sidecar(p).is_file())
    if kind_of(source) == "url":
        name = default_name(source)
        return [folder / name] if ok(folder / name) else []
    found = sorted(
        p
        for p in folder.glob(f"{source}*")
        if re.fullmatch(rf"{source}(_[12])?\.[A-Za-z0-9.]+", p.name)
        and not p.name.endswith((".md5", ".part"))
    )
    return found if found and all(ok(p) for p in found) else []


class _progress:
    """A tqdm bar on a terminal, nothing in logs."""

    def __init__(self, enabled: bool, total: int | None, initial: int, name: str) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                initial=initial,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=name,
                file=sys.stderr,
                leave=False,
            )

    def __enter__(self):
        return self

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


# -- the command line: `gexp fetch` ------------------------------------------------------------


def network_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--encode-url", help="ENCODE portal (default $GEXP_ENCODE_URL or the portal)")
    p.add_argument("--ena-url", help="ENA (default $GEXP_ENA_URL or ENA's)")
    p.add_argument("--retries", type=int, default=5, help="retries per request or download")
    p.add_argument(
        "--retry-wait",
        type=float,
        default=1.0,
        help="first backoff in seconds, doubled on each retry",
    )


def fetcher(a: argparse.Namespace):
    """The Fetcher that network_options describe."""
    return Fetcher(
        encode_url=a.encode_url, ena_url=a.ena_url, retries=a.retries, backoff=a.retry_wait
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="local path, http(s) URL, ENCFF… accession or SRR/ERR/DRR run")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--out", type=Path, help="the file to write (a run's mates: _1, _2); or --outdir"
    )
    where.add_argument("--outdir", type=Path, help="a folder; files keep their own names")
    p.add_argument(
        "--stub",
        action="store_true",
        help="no download: an empty placeholder under the stored name (for nextflow -stub)",
    )
    network_options(p)


def run(a: argparse.Namespace) -> None:
    if a.stub:
        if a.outdir is None:
            raise GexpError("fetch --stub writes into --outdir")
        paths = write_stub(a.source, a.outdir)
    else:
        paths = fetcher(a).fetch(a.source, out=a.out, outdir=a.outdir)
    for path in paths:
        print(path)
