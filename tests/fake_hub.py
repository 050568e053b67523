"""A tiny in-memory Hugging Face Hub on 127.0.0.1, for the endpoints huggingface_hub uses.

    POST /api/repos/create                          create_repo (409 if it exists)
    POST /api/validate-yaml                         README metadata check
    POST /api/models/{repo}/branch/{branch}         create_branch
    GET  /api/models/{repo}[/revision/{rev}]        repo_info / model_info
    GET  /api/models/{repo}/tree/{rev}[/{path}]     list_repo_tree (snapshot_download)
    POST /api/models/{repo}/preupload/{rev}         every file "regular" (inline base64)
    POST /api/models/{repo}/commit/{rev}            NDJSON commit, all or nothing
    HEAD/GET /{repo}/resolve/{rev}/{path}           hf_hub_download

Writes need "Authorization: Bearer <token>"; private repos need it to read.
With `namespaces`, the token may write only there, as on the real Hub:
creating elsewhere is HTTP 403, writing to another's repo is 404.
`fail_next` makes the next N requests whose path contains a substring fail
with `fail_status` (default HTTP 500) and `fail_headers` (e.g. {"commit": 1};
429 with {"Retry-After": "30"} for a rate limit).
"""

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse


class Repo:
    def __init__(self, private):
        self.private = private
        self.commits = {}  # oid -> {path: bytes}
        self.branches = {}
        self._commit({}, "main", "initial commit")

    def _commit(self, files, branch, message):
        oid = hashlib.sha1(f"{len(self.commits)}{message}".encode()).hexdigest()
        self.commits[oid] = files
        self.branches[branch] = oid
        return oid

    def resolve(self, revision):
        if revision in self.branches:
            return self.branches[revision]
        return revision if revision in self.commits else None


class FakeHub:
    def __init__(self, token, namespaces=None):
        self.token = token
        self.namespaces = namespaces  # where the token may write; None: anywhere
        self.repos = {}
        self.requests = []  # (method, path, headers)
        self.fail_next = {}
        self.fail_status = 500
        self.fail_headers = {}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def files(self, repo_id, revision="main"):
        repo = self.repos[repo_id]
        return repo.commits[repo.resolve(revision)]

    def commit_count(self, repo_id):
        return len(self.repos[repo_id].commits)


def _handler(hub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        # -------------------------------------------------------- plumbing
        def _send(self, status, body=b"", headers=None, head=False):
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                headers = {"Content-Type": "application/json", **(headers or {})}
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _error(self, status, message, headers=None):
            self._send(status, {"error": message}, {"X-Error-Message": message, **(headers or {})})

        def _body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _authorized(self):
            return self.headers.get("Authorization") == f"Bearer {hub.token}"

        def _may_write(self, repo_id):
            return self._authorized() and (hub.namespaces is None
                                           or repo_id.split("/")[0] in hub.namespaces)

        def _start(self):
            path = urlparse(self.path)
            with hub.lock:
                hub.requests.append((self.command, path.path,
                                     {k.lower(): v for k, v in self.headers.items()}))
                for needle, count in hub.fail_next.items():
                    if count and needle in path.path:
                        hub.fail_next[needle] = count - 1
                        self._body()
                        self._error(hub.fail_status, "Injected failure", hub.fail_headers)
                        return None
            return path

        def _repo(self, repo_id, write=False):
            repo = hub.repos.get(repo_id)
            if repo is None or ((write or repo.private) and not self._may_write(repo_id)):
                self._send(404, {"error": "Repository not found"},
                           {"X-Error-Code": "RepoNotFound",
                            "X-Error-Message": "Repository not found"})
                return None
            return repo

        # ---------------------------------------------------------- verbs
        def do_POST(self):
            path = self._start()
            if path is None:
                return
            parts = [unquote(p) for p in path.path.strip("/").split("/")]
            if parts[:3] == ["api", "repos", "create"]:
                return self._create(json.loads(self._body()))
            if parts[:2] == ["api", "validate-yaml"]:
                self._body()
                return self._send(200, {"errors": [], "warnings": []})
            if parts[:2] == ["api", "models"] and len(parts) >= 6:
                repo_id, action, rev = "/".join(parts[2:4]), parts[4], "/".join(parts[5:])
                body = self._body()
                repo = self._repo(repo_id, write=True)
                if repo is None:
                    return
                if action == "branch":
                    if rev in repo.branches:
                        return self._error(409, "Branch already exists")
                    repo.branches[rev] = repo.branches["main"]
                    return self._send(200, {})
                if action == "preupload":
                    files = json.loads(body)["files"]
                    return self._send(200, {"files": [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                        for f in files]})
                if action == "commit":
                    return self._commit(repo, repo_id, rev, body)
            self._error(404, f"no route POST {path.path}")

        def _create(self, payload):
            if not self._authorized():
                return self._error(401, "Invalid credentials")
            repo_id = f"{payload['organization']}/{payload['name']}"
            if not self._may_write(repo_id):
                return self._error(403, "You don't have the rights to create a model under "
                                        f"the namespace \"{payload['organization']}\"")
            with hub.lock:
                if repo_id in hub.repos:  # the Hub answers 409 with the url too
                    return self._send(409, {"error": "You already created this model repo",
                                            "url": f"{hub.url}/{repo_id}"})
                hub.repos[repo_id] = Repo(payload.get("visibility") == "private")
            self._send(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})

        def _commit(self, repo, repo_id, revision, body):
            lines = [json.loads(line) for line in body.decode().splitlines() if line]
            header = lines[0]["value"]
            with hub.lock:
                parent = repo.resolve(revision)
                if parent is None or revision not in repo.branches:
                    return self._error(404, f"Invalid rev id: {revision}")
                files = dict(repo.commits[parent])
                for line in lines[1:]:
                    if line["key"] != "file":
                        return self._error(400, f"unsupported operation {line['key']}")
                    value = line["value"]
                    files[value["path"]] = base64.b64decode(value["content"])
                oid = repo._commit(files, revision, header["summary"])
            self._send(200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{oid}",
                             "commitOid": oid, "success": True})

        def do_HEAD(self):
            self.do_GET(head=True)

        def do_GET(self, head=False):
            path = self._start()
            if path is None:
                return
            parts = [unquote(p) for p in path.path.strip("/").split("/")]
            if parts[:2] == ["api", "models"]:
                repo_id = "/".join(parts[2:4])
                repo = self._repo(repo_id)
                if repo is None:
                    return
                rest = parts[4:]
                if not rest or rest[0] == "revision":
                    return self._info(repo, repo_id, rest[1] if rest else "main")
                if rest[0] == "tree":
                    recursive = parse_qs(path.query).get("recursive", ["False"])[0]
                    return self._tree(repo, rest[1], "/".join(rest[2:]),
                                      recursive.lower() == "true")
            if len(parts) >= 5 and parts[2] == "resolve":
                repo = self._repo("/".join(parts[:2]))
                if repo is None:
                    return
                return self._resolve(repo, parts[3], "/".join(parts[4:]), head)
            self._error(404, f"no route GET {path.path}")

        def _info(self, repo, repo_id, revision):
            oid = repo.resolve(revision)
            if oid is None:
                return self._send(404, {"error": "Invalid rev id"},
                                  {"X-Error-Code": "RevisionNotFound"})
            self._send(200, {"id": repo_id, "modelId": repo_id, "sha": oid,
                             "private": repo.private,
                             "siblings": [{"rfilename": p} for p in sorted(repo.commits[oid])]})

        def _tree(self, repo, revision, prefix, recursive):
            oid = repo.resolve(revision)
            if oid is None:
                return self._send(404, {"error": "Invalid rev id"},
                                  {"X-Error-Code": "RevisionNotFound"})
            entries, folders = [], set()
            for name, data in sorted(repo.commits[oid].items()):
                if prefix and not name.startswith(prefix + "/"):
                    continue
                rel = name[len(prefix) + 1:] if prefix else name
                if "/" in rel and not recursive:
                    folders.add((prefix + "/" if prefix else "") + rel.split("/")[0])
                    continue
                entries.append({"type": "file", "path": name, "size": len(data),
                                "oid": _git_oid(data)})
            entries += [{"type": "directory", "path": f, "oid": "0" * 40, "size": 0}
                        for f in sorted(folders)]
            self._send(200, entries)

        def _resolve(self, repo, revision, name, head):
            oid = repo.resolve(revision)
            files = repo.commits.get(oid) if oid else None
            if files is None or name not in files:
                return self._send(404, {"error": "Entry not found"},
                                  {"X-Error-Code": "EntryNotFound"}, head=head)
            data = files[name]
            etag = f'"{_git_oid(data)}"'
            self._send(200, data, {"X-Repo-Commit": oid, "ETag": etag,
                                   "Content-Type": "application/octet-stream"}, head=head)

    return Handler


def _git_oid(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
