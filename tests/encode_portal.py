"""A real HTTP server on 127.0.0.1 that plays the ENCODE portal, ENA and a storage host.

Responses are built from the ENCODE fixtures in tests/fixtures/encode (real portal
JSON); downloads can be made to fail on purpose, request by request:

    server.faults["/bucket/x.gz"] = ["drop", "503", "ok"]

Faults: "drop" (connection closed a third of the way into the body), "truncate"
(closed a few bytes before the end), "503", "429" (Retry-After: 1), "404", "403", "corrupt"
(right length, wrong bytes), "ignore-range" (a full 200 answer to a Range request).
Every request is recorded with its time and whether it carried credentials.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).parent / "fixtures" / "encode"


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


@dataclass
class Request:
    time: float
    path: str
    query: dict
    auth: bool
    range: str | None


class Server:
    def __init__(self) -> None:
        self.json: dict[str, object] = {}
        self.blobs: dict[str, bytes] = {}
        self.text: dict[str, object] = {}
        self.redirects: dict[str, str] = {}
        self.faults: dict[str, list[str]] = defaultdict(list)
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"server_state": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]


class _Handler(BaseHTTPRequestHandler):
    server_state: Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        state = self.server_state
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        with state.lock:
            state.requests.append(
                Request(
                    time.monotonic(),
                    path,
                    query,
                    "Authorization" in self.headers,
                    self.headers.get("Range"),
                )
            )
            fault = state.faults[path].pop(0) if state.faults.get(path) else "ok"
        if fault in ("503", "404", "403"):
            return self._status(int(fault))
        if fault == "429":
            return self._status(429, {"Retry-After": "1"})
        if path in state.redirects:
            return self._status(307, {"Location": state.redirects[path]})
        if path in state.json:
            value = state.json[path]
            body = json.dumps(value(query) if callable(value) else value).encode()
            return self._send(200, body, "application/json")
        if path in state.text:
            value = state.text[path]
            return self._send(
                200, (value(query) if callable(value) else value).encode(), "text/plain"
            )
        if path in state.blobs:
            return self._blob(state.blobs[path], fault)
        return self._status(404)

    def _status(self, code: int, headers: dict | None = None) -> None:
        body = f'{{"status": {code}}}'.encode()
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send(self, code: int, body: bytes, kind: str, headers: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _blob(self, data: bytes, fault: str) -> None:
        start = 0
        wanted = self.headers.get("Range")
        if wanted and fault != "ignore-range":
            start = int(wanted.split("=")[1].split("-")[0])
            if start >= len(data):
                return self._status(416, {"Content-Range": f"bytes */{len(data)}"})
        body = data[start:]
        if fault == "corrupt":
            body = bytes(b ^ 0xFF for b in body[:16]) + body[16:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if fault in ("drop", "truncate"):
            cut = len(body) // 3 if fault == "drop" else max(0, len(body) - 7)
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


# -- ENCODE objects built from the fixtures ------------------------------------------------


def file_object(template: str | dict, accession: str, data: bytes, ext: str, **fields) -> dict:
    """A portal File object of the fixture's shape, describing `data`."""
    obj = copy.deepcopy(fixture(f"derived/{template}") if isinstance(template, str) else template)
    obj.update(
        {
            "accession": accession,
            "@id": f"/files/{accession}/",
            "title": accession,
            "href": f"/files/{accession}/@@download/{accession}{ext}",
            "md5sum": hashlib.md5(data).hexdigest(),
            "file_size": len(data),
            "status": "released",
        }
    )
    obj.update(fields)
    return obj


def serve_encode_file(portal: Server, storage: Server, obj: dict, data: bytes) -> None:
    """/files/ACC/ metadata on the portal; its href redirects to the storage host."""
    acc = obj["accession"]
    portal.json[f"/files/{acc}/"] = obj
    bucket = f"/bucket/{acc}/{obj['href'].rsplit('/', 1)[1]}"
    portal.redirects[obj["href"]] = storage.url + bucket
    storage.blobs[bucket] = data


def ena_report(rows: list[tuple[str, list[str], list[bytes]]], host: str) -> str:
    """ENA filereport TSV; fastq_ftp paths have no scheme, as ENA writes them."""
    lines = ["run_accession\tfastq_ftp\tfastq_md5\tfastq_bytes"]
    for run, names, blobs in rows:
        lines.append(
            "\t".join(
                [
                    run,
                    ";".join(f"{host}/vol1/fastq/{run}/{n}" for n in names),
                    ";".join(hashlib.md5(b).hexdigest() for b in blobs),
                    ";".join(str(len(b)) for b in blobs),
                ]
            )
        )
    return "\n".join(lines) + "\n"


def experiment(
    template: str,
    accession: str,
    assay_title: str,
    biosample: str,
    classification: str,
    donor: str,
    files: list[dict],
) -> dict:
    """An embedded Experiment of the fixture's shape with the given identity and files."""
    exp = copy.deepcopy(fixture(template))
    exp.update(
        {
            "accession": accession,
            "@id": f"/experiments/{accession}/",
            "assay_title": assay_title,
            "status": "released",
            "files": files,
        }
    )
    exp["assay_term_name"] = "ATAC-seq" if assay_title == "ATAC-seq" else "RNA-seq"
    exp["biosample_ontology"] = {
        **exp.get("biosample_ontology", {}),
        "term_name": biosample,
        "classification": classification,
    }
    for rep in exp.get("replicates", []):
        rep["library"]["biosample"]["donor"]["accession"] = donor
        rep["library"]["biosample"]["donor"]["@id"] = f"/human-donors/{donor}/"
    return exp


def search_page(hits: list[dict]) -> dict:
    """A search response shaped like the fixture's: @graph of summary objects, total, …"""
    page = {
        k: v
        for k, v in fixture("search_Dataset_HomoSapiens_limit50_2016.json").items()
        if k not in ("@graph", "facets", "total")
    }
    page["@graph"] = [
        {
            "@id": e["@id"],
            "@type": ["Experiment", "Dataset", "Item"],
            "accession": e["accession"],
            "assay_title": e["assay_title"],
            "status": e["status"],
            "biosample_ontology": {
                "term_name": e["biosample_ontology"]["term_name"],
                "classification": e["biosample_ontology"]["classification"],
            },
        }
        for e in hits
    ]
    page["total"] = len(hits)
    page["facets"] = []
    return page
