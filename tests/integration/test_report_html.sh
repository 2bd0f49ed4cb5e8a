#!/bin/sh
# The HTML validation reports render in a real browser: each golden page in
# tests/data/report is loaded in headless Chromium, which must draw a
# non-blank 1200x900 screenshot with the chart's colours in it, and whose
# DOM must hold one rect.bar per check with the check's node and value (and
# one bare/Kubernetes pair per comparison row), nothing external, no script.
# The expectations come from each case's input JSON, not from the page.
#
# check_page HTML JSON works for any report.html with the report.json
# written next to it, so a report from `aicp validate --report DIR` can be
# checked the same way: check_page DIR/report.html DIR/report.json.
#
# Skips (77) without chromium or python3. Chromium runs with --no-sandbox,
# which running as root requires.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"

skip() {
    echo "SKIP: $*" >&2
    exit 77
}

CHROMIUM=$(command -v chromium || command -v chromium-browser || command -v google-chrome) ||
    skip "no chromium (apt-get install chromium)"
command -v python3 >/dev/null 2>&1 || skip "no python3"

work=$(mktemp -d "${TMPDIR:-/tmp}/aicp-report-html.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT INT TERM
fail=0

browser() {
    # A private profile and no network: the page must stand alone.
    timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --no-first-run --disable-extensions --user-data-dir="$work/profile" \
        --proxy-server=127.0.0.1:9 --window-size=1200,900 "$@" 2>>"$work/chromium.log"
}

check_page() {
    html=$1 json=$2 name=$(basename "$1")
    rm -f "$work/shot.png" "$work/dom.html"
    if ! browser --screenshot="$work/shot.png" "file://$html" >/dev/null ||
        [ ! -s "$work/shot.png" ]; then
        echo "FAIL $name: chromium wrote no screenshot"
        tail -5 "$work/chromium.log"
        fail=1
        return
    fi
    if ! browser --dump-dom "file://$html" >"$work/dom.html" || [ ! -s "$work/dom.html" ]; then
        echo "FAIL $name: chromium dumped no DOM"
        tail -5 "$work/chromium.log"
        fail=1
        return
    fi
    if python3 - "$work/shot.png" "$work/dom.html" "$json" "$name" <<'EOF'; then
import html.parser, json, struct, sys, zlib

shot, dom_path, json_path, name = sys.argv[1:5]
errors = []


def png_pixels(path):
    """Width, height and RGB rows of an 8-bit RGB/RGBA PNG (no PIL)."""
    data = open(path, 'rb').read()
    if data[:8] != b'\x89PNG\r\n\x1a\n':
        raise ValueError('not a PNG')
    pos, idat, ihdr = 8, b'', None
    while pos < len(data):
        length, kind = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b'IHDR':
            ihdr = struct.unpack('>IIBBBBB', body)
        elif kind == b'IDAT':
            idat += body
        pos += 12 + length
    w, h, depth, ctype, _, _, interlace = ihdr
    if depth != 8 or ctype not in (2, 6) or interlace != 0:
        raise ValueError('unexpected PNG format depth=%d type=%d' % (depth, ctype))
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(h):
        f = raw[i]
        line = bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x:x + 3]) for x in range(0, stride, bpp)])
        prev = line
    return w, h, rows


def near(px, rgb, tol=24):
    return all(abs(p - q) <= tol for p, q in zip(px, rgb))


report = json.load(open(json_path))
checks = report.get('checks') if isinstance(report.get('checks'), list) else []
comparison = report.get('comparison') if isinstance(report.get('comparison'), list) else []

try:
    w, h, rows = png_pixels(shot)
except Exception as e:  # a broken PNG is a failure, not a crash
    w = h = 0
    rows = []
    errors.append('screenshot: %s' % e)
if rows:
    if (w, h) != (1200, 900):
        errors.append('screenshot is %dx%d, not 1200x900' % (w, h))
    colours, inked = set(), 0
    green = red = 0
    for row in rows[::2]:
        for px in row[::2]:
            colours.add(px)
            if px != (255, 255, 255):
                inked += 1
            if near(px, (0x2e, 0x7d, 0x32)):
                green += 1
            if near(px, (0xc6, 0x28, 0x28)):
                red += 1
    total = len(rows[::2]) * len(rows[0][::2])
    if len(colours) < 8 or inked < total // 100:
        errors.append('screenshot looks blank (%d colours, %d of %d pixels inked)'
                      % (len(colours), inked, total))
    # The chart sits above the fold: passed bars draw green, failed red.
    if any(isinstance(c, dict) and c.get('passed') is True for c in checks) and green < 200:
        errors.append('no green (passed) bar in the screenshot')
    if any(isinstance(c, dict) and c.get('passed') is not True for c in checks) and red < 200:
        errors.append('no red (failed) bar in the screenshot')


class Dom(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.bars, self.pairs, self.bad, self.verdict, self._in_verdict = [], [], [], '', False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get('class') or '').split()
        if tag == 'rect' and 'bar' in cls:
            self.bars.append(a)
        if tag == 'rect' and 'pair' in cls:
            self.pairs.append(a)
        if tag in ('script', 'link', 'img', 'iframe', 'object', 'embed'):
            self.bad.append(tag)
        for k in ('src', 'href'):
            if a.get(k):
                self.bad.append('%s=%s' % (k, a[k]))
        if a.get('id') == 'verdict':
            self._in_verdict = True

    def handle_data(self, data):
        if self._in_verdict:
            self.verdict += data

    def handle_endtag(self, tag):
        self._in_verdict = False


dom = Dom()
dom.feed(open(dom_path, encoding='utf-8').read())
if len(dom.bars) != len(checks):
    errors.append('%d rect.bar elements, want %d (one per check)' % (len(dom.bars), len(checks)))
for bar, c in zip(dom.bars, checks):
    c = c if isinstance(c, dict) else {}
    if isinstance(c.get('node'), str) and bar.get('data-node') != c['node']:
        errors.append('bar data-node %r, want %r' % (bar.get('data-node'), c['node']))
    want_cls = 'pass' if c.get('passed') is True else 'fail'
    if want_cls not in bar.get('class', '').split():
        errors.append('bar for %r is not class %s' % (c.get('node'), want_cls))
    v = c.get('images_per_sec')
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if bar.get('data-value') is None or abs(float(bar['data-value']) - v) > 1e-9:
            errors.append('bar data-value %r, want %r' % (bar.get('data-value'), v))
        if not float(bar.get('width', '0')) > 0:
            errors.append('bar for %r has no width' % c.get('node'))
if len(dom.pairs) != 2 * len(comparison):
    errors.append('%d rect.pair elements, want %d' % (len(dom.pairs), 2 * len(comparison)))
for i, row in enumerate(comparison):
    if isinstance(row, dict) and isinstance(row.get('node'), str):
        for p in dom.pairs[2 * i:2 * i + 2]:
            if p.get('data-node') != row['node']:
                errors.append('pair data-node %r, want %r' % (p.get('data-node'), row['node']))
if dom.bad:
    errors.append('page is not self-contained: %s' % ', '.join(dom.bad))
drift = report.get('drift') if isinstance(report.get('drift'), dict) else {}
bad_run = any(not (isinstance(c, dict) and c.get('passed') is True) for c in checks) or \
    bool(drift.get('drifted')) or bool(drift.get('failed'))
if dom.verdict.strip() != ('FAIL' if bad_run else 'PASS'):
    errors.append('verdict %r, want %s' % (dom.verdict.strip(), 'FAIL' if bad_run else 'PASS'))
for e in errors:
    print('FAIL %s: %s' % (name, e))
sys.exit(1 if errors else 0)
EOF
        echo "ok   $name renders: $(grep -o '<rect class="bar ' "$work/dom.html" | wc -l) bars"
    else
        fail=1
    fi
}

n=0
for json in "$top_srcdir"/tests/data/report/*.json; do
    case $json in *.out.json) continue ;; esac
    check_page "${json%.json}.html" "$json"
    n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "FAIL: no golden reports in $top_srcdir/tests/data/report"; exit 1; }
exit $fail
