#!/usr/bin/python3
"""Checks for tests/report/run.sh.

  check_report.py proxy LOG PORTFILE     a proxy that logs every request it gets and answers 502
  check_report.py page DOM HTML MANIFEST SUMMARY [PROFILE]
                                         the page Chromium rendered (DOM) and the file (HTML):
                                         links resolve, nothing is fetched, every kernel and
                                         buffer of the manifest appears, the totals are aec
                                         summary's, the kernels' FLOPs add up to the step's
  check_report.py diff DOM KIND          KIND=changed: kernels and buffers are marked;
                                         KIND=same: nothing is; KIND=old: buffers not compared
"""
import html.parser, json, re, socket, sys, threading


class Page(html.parser.HTMLParser):
    """Ids, links, resource attributes, headings and the data-* facts of a page."""
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.links, self.fetches, self.headings = set(), [], [], []
        self.kernels, self.totals, self.flops, self.classes = [], {}, [], {}
        self.svgs, self.titles, self.styles, self._style = [], set(), [], False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            if a["id"] in self.ids:
                raise SystemExit(f"duplicate id {a['id']!r}")
            self.ids.add(a["id"])
        for key in ("href", "xlink:href"):
            if key in a:
                self.links.append(a[key])
        for key in ("src", "srcset", "action", "poster", "data", "formaction", "background", "ping"):
            if key in a:
                self.fetches.append(f"<{tag} {key}={a[key]!r}>")
        if tag == "link" or (tag == "script" and "src" in a) or tag in ("iframe", "img", "embed", "object", "video", "audio"):
            self.fetches.append(f"<{tag}>")
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))
        if tag == "section" and "data-kernel" in a:
            self.kernels.append((a.get("id"), a["data-kernel"], a.get("class", "")))
        if "data-total" in a:
            self.totals[a["data-total"]] = float(a["data-value"])
        if "data-flops" in a:
            self.flops.append(float(a["data-flops"]))
        if "class" in a:
            for c in a["class"].split():
                self.classes[c] = self.classes.get(c, 0) + 1
        if tag == "svg":
            self.svgs.append(a)
        if "style" in a:
            self.styles.append(a["style"])
        self._style = tag == "style"
        if tag == "title" and "id" in a:
            self.titles.add(a["id"])

    def handle_data(self, data):
        if self._style:
            self.styles.append(data)


def parse(path):
    p = Page()
    p.feed(open(path, encoding="utf-8").read())
    return p


def fail(msg):
    print(f"check_report: {msg}", file=sys.stderr)
    sys.exit(1)


def check_page(dom_path, html_path, manifest_path, summary_path, profile_path=None):
    dom, raw = parse(dom_path), open(html_path, encoding="utf-8").read()
    manifest, summary = json.load(open(manifest_path)), json.load(open(summary_path))
    name = manifest["model"]
    # nothing leaves the file: no resource attributes, no external links, no CSS urls or imports
    if dom.fetches:
        fail(f"{name}: the page loads resources: {dom.fetches[:5]}")
    external = [l for l in dom.links if not l.startswith("#")]
    if external:
        fail(f"{name}: links that leave the page: {external[:5]}")
    if any(re.search(r"url\s*\(|@import", s) for s in dom.styles):
        fail(f"{name}: CSS that fetches")
    if re.search(r"<(script|link|img|iframe)[^>]*\s(src|href)\s*=\s*[\"']?(https?:)?//", raw, re.I):
        fail(f"{name}: the HTML file references a remote resource")
    # every link target exists
    missing = sorted({l[1:] for l in dom.links if l.startswith("#") and l[1:] not in dom.ids})
    if missing:
        fail(f"{name}: {len(missing)} link targets missing, e.g. {missing[:5]}")
    # every kernel of the manifest, in order, then the loss; every buffer has its row
    want = [k["name"] for k in manifest["kernels"]]
    got = [k for _, k, _ in dom.kernels]
    if got != want + ["loss"]:
        fail(f"{name}: kernels on the page {got} are not the manifest's {want} + loss")
    for i, (ident, _, _) in enumerate(dom.kernels[:-1]):
        if ident != f"k{i}":
            fail(f"{name}: kernel {i} has id {ident}")
    for b in manifest["buffers"]:
        if "buf-" + b["name"] not in dom.ids:
            fail(f"{name}: buffer {b['name']} has no row")
    # the golden numbers: aec summary --json, the manifest, and the kernels' own FLOPs
    totals = summary["totals"]
    for key in ("params_trainable", "params_frozen", "flops_forward_per_example", "flops_train_step", "bytes_params",
                "bytes_grads", "bytes_optimizer", "bytes_activations", "bytes_arena"):
        if dom.totals.get(key) != totals[key]:
            fail(f"{name}: {key} is {dom.totals.get(key)} on the page, {totals[key]} in aec summary --json")
    if dom.totals.get("kernels") != len(want) or dom.totals.get("arena_floats") != manifest["arena_floats"]:
        fail(f"{name}: kernel count or arena size differ from the manifest")
    if abs(sum(dom.flops) - totals["flops_train_step"]) > 1e-6 * max(1, totals["flops_train_step"]):
        fail(f"{name}: the kernels' FLOPs add up to {sum(dom.flops):.0f}, the summary says {totals['flops_train_step']:.0f}")
    page_flops = {k["name"]: k["flops"] for k in manifest["kernels"]}
    # structure a reader (and a screen reader) relies on
    if not dom.headings or dom.headings[0] != 1 or dom.headings.count(1) != 1:
        fail(f"{name}: the page needs exactly one h1, first")
    for a, b in zip(dom.headings, dom.headings[1:]):
        if b > a + 1:
            fail(f"{name}: heading h{a} followed by h{b}")
    for svg in dom.svgs:
        labels = svg.get("aria-labelledby", "").split()
        if svg.get("role") != "img" or not labels or labels[0] not in dom.titles:
            fail(f"{name}: an svg without role=img and a title")
    for section in ("summary", "spec", "code", "memory", "time", "changes"):
        if section not in dom.ids:
            fail(f"{name}: no section {section}")
    if profile_path:
        prof = json.load(open(profile_path))
        measured = dom.classes.get("fwd", 0)
        with_flops = sum(1 for k in prof["kernels"] if k["forward_flops"] > 0 and k["forward_ms"] > 0)
        if measured != with_flops or "roof-t" not in dom.titles:
            fail(f"{name}: the roofline shows {measured} forward points, the profile has {with_flops} timed kernels with FLOPs")
        for k in prof["kernels"]:
            if k["name"] != "loss" and page_flops[k["name"]] != [k["forward_flops"], k["backward_flops"]]:
                fail(f"{name}: the profile's FLOPs of {k['name']} differ from the manifest's")
    print(f"{name}: {len(dom.links)} links resolve, {len(want)} kernels and {len(manifest['buffers'])} buffers shown, "
          f"totals match aec summary, nothing fetched")


def check_diff(dom_path, kind):
    dom = parse(dom_path)
    changed = sum(1 for _, _, c in dom.kernels if "changed" in c)
    marked = dom.classes.get("changed", 0) + dom.classes.get("added", 0)
    raw = open(dom_path, encoding="utf-8").read()
    if kind == "changed" and (changed == 0 or dom.classes.get("mk", 0) == 0 or "removed" not in dom.classes and marked < 2):
        fail(f"diff: a changed spec shows {changed} changed kernels and {dom.classes.get('mk', 0)} marked buffers")
    if kind == "same" and (changed or marked):
        fail(f"diff: an unchanged build shows {changed} changed kernels and {marked} marks")
    if kind == "old" and "buffers are not compared" not in raw:
        fail("diff: a manifest without buffers is not said to be one")
    print(f"diff ({kind}): {changed} kernels marked changed, {marked} marks in all")


def proxy(log_path, port_path):
    """Logs the first line of every connection (a request leaving the page) and answers 502."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    open(port_path, "w").write(str(srv.getsockname()[1]))
    lock = threading.Lock()

    def serve(conn):
        with conn:
            conn.settimeout(5)
            try:
                first = conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
            except OSError:
                first = "(connection without a request line)"
            with lock, open(log_path, "a") as log:
                log.write(first + "\n")
            try:
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass

    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "proxy":
        proxy(sys.argv[2], sys.argv[3])
    elif cmd == "page":
        check_page(*sys.argv[2:])
    elif cmd == "diff":
        check_diff(sys.argv[2], sys.argv[3])
    else:
        fail(f"unknown command {cmd}")
