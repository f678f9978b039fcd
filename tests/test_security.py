"""Regression guard for SECURITY.md: the package source (dataqa/, stages/) holds none of
the patterns the review ruled out. Each rule is a regex over every source line; a hit
outside the rule's allow-list fails with file:line. Comments and docstrings are scanned
too on purpose: a pattern named in prose is cheap to reword, a missed call is not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(REPO / "dataqa").rglob("*.py"), *(REPO / "stages").rglob("*.py")])
TEMPLATES = sorted((REPO / "dataqa").rglob("*.j2"))

# name -> (files it applies to, forbidden regex, what is allowed instead). Allowed hits
# are listed as "relative/path.py" in ALLOW; each allow-list entry was reviewed.
RULES: dict[str, tuple[list[Path], re.Pattern[str], str]] = {
    # YAML: only safe_load / safe_dump (yaml.load can build arbitrary Python objects)
    "yaml_load": (SOURCES, re.compile(r"yaml\.(load|load_all|unsafe_load|full_load)\s*\("),
                  "yaml.safe_load"),
    # torch.load must pass weights_only=True on the same call line (no pickle code run)
    "torch_load": (SOURCES, re.compile(r"torch\.load\((?![^)\n]*weights_only=True)"),
                   "torch.load(..., weights_only=True)"),
    # the one checkpoint loader (dataqa/engine/checkpoint.py) reads every weights file;
    # torchvision's/torch.hub's loaders unpickle with weights_only=False and never check
    # the hash of a cached file
    "hub_loader": (SOURCES, re.compile(r"(load_state_dict_from_url|get_state_dict|"
                                       r"torch\.hub\.load)\s*\("),
                   "dataqa.engine.checkpoint.load_checkpoint"),
    "torch_load_outside_checkpoint": (SOURCES, re.compile(r"\btorch\.load\s*\("),
                                      "dataqa.engine.checkpoint.load_checkpoint"),
    # no shell: file names must never reach a shell command line
    "shell": (SOURCES, re.compile(r"shell\s*=\s*True|os\.system\s*\(|os\.popen\s*\("),
              "subprocess with an argument list"),
    # no pickle of data read from disk (npy loads keep allow_pickle=False)
    "pickle": (SOURCES, re.compile(r"allow_pickle\s*=\s*True|pickle\.loads?\s*\("),
               "allow_pickle=False / Parquet / JSON"),
    # no network client in the package (optuna RDB storage goes through SQLAlchemy)
    "network": (SOURCES, re.compile(r"^\s*(import|from)\s+(urllib|requests|httpx|http\.client"
                                    r"|aiohttp|ftplib|smtplib)\b"),
                "nothing: dataqa never fetches anything at run time"),
    # Jinja autoescape is never switched off, and no value is marked safe in templates
    "autoescape_off": (SOURCES, re.compile(r"autoescape\s*=\s*False|autoescape\s+false"),
                       "autoescape=True"),
    "safe_filter": (TEMPLATES, re.compile(r"\|\s*safe\b|autoescape\s+false"),
                    "build Markup in Python from escaped pieces (charts.py)"),
    # templates reference nothing outside the file (no CDN, fonts, scripts, images)
    "external_url": (TEMPLATES, re.compile(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", re.I),
                     "inline CSS/SVG/data: URIs"),
    # Markup() wraps only strings built from escaped pieces; only these files may build it
    "markup": (SOURCES, re.compile(r"\bMarkup\((?!\"\"\))"), "escape() each piece first"),
    # the terminal is written only through dataqa.text.say (control characters escaped,
    # URL passwords redacted); a bare print of a data-derived name would bypass it
    "print": (SOURCES, re.compile(r"(?<![\w.])print\("), "dataqa.text.say"),
}
ALLOW: dict[str, set[str]] = {
    "torch_load_outside_checkpoint": {"dataqa/engine/checkpoint.py"},
    # charts.py:_svg wraps SVG whose every text piece went through _text()/escape()
    "markup": {"dataqa/report/charts.py"},
    # text.say is the one print
    "print": {"dataqa/text.py"},
}


def hits(rule: str) -> list[str]:
    files, pattern, _ = RULES[rule]
    out = []
    for path in files:
        rel = path.relative_to(REPO).as_posix()
        if rel in ALLOW.get(rule, set()):
            continue
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if pattern.search(line):
                out.append(f"{rel}:{no}: {line.strip()}")
    return out


def test_there_is_something_to_scan() -> None:
    assert len(SOURCES) > 30 and len(TEMPLATES) > 3


@pytest.mark.parametrize("rule", list(RULES))
def test_forbidden_pattern_absent(rule: str) -> None:
    found = hits(rule)
    assert not found, (f"{rule}: use {RULES[rule][2]} instead (see SECURITY.md):\n  "
                       + "\n  ".join(found))


# each rule really catches what it forbids: (rule, offending line)
CATCHES = [
    ("yaml_load", "data = yaml.load(fh)"),  # plain yaml.load
    ("yaml_load", "yaml.full_load(text)"),  # full_load builds Python objects too
    ("torch_load", "state = torch.load(path, map_location='cpu')"),  # no weights_only
    ("torch_load", "torch.load(path, weights_only=False)"),  # explicitly unsafe
    ("hub_loader", "state = entry.get_state_dict(progress=False)"),  # unpickles the cache
    ("hub_loader", "torch.hub.load_state_dict_from_url(url)"),  # weights_only=False
    ("torch_load_outside_checkpoint", "torch.load(p, weights_only=True)"),  # a 2nd loader
    ("shell", "subprocess.run(cmd, shell=True)"),  # a shell line
    ("shell", "os.system(f'convert {name}')"),  # a file name in a shell command
    ("pickle", "np.load(p, allow_pickle=True)"),  # pickled object arrays
    ("network", "import requests"),  # a network client
    ("network", "from urllib.request import urlopen"),  # stdlib network client
    ("autoescape_off", "jinja2.Environment(autoescape=False)"),  # escaping off
    ("safe_filter", "<td>{{ row.path|safe }}</td>"),  # a file name as raw HTML
    ("safe_filter", "{% autoescape false %}"),  # a block without escaping
    ("external_url", '<script src="https://cdn.example.com/x.js">'),  # a CDN script
    ("external_url", "@import url(//fonts.googleapis.com/css);"),  # protocol-relative
    ("markup", "Markup(f'<td>{name}</td>')"),  # raw HTML from a value
    ("print", "print(f'FAILED {name}')"),  # a class name raw to the terminal
]
ALLOWED_LINES = [
    ("print", "say(f'FAILED {name}')"),
    ("print", "pprint(x); tqdm.print(x)"),
    ("torch_load", "torch.load(path, map_location='cpu', weights_only=True)"),
    ("yaml_load", "yaml.safe_load(text)"),
    ("markup", 'return Markup("")'),
    ("external_url", '<img src="data:image/png;base64,{{ t.uri }}">'),
]


@pytest.mark.parametrize(("rule", "line"), CATCHES)
def test_rule_catches(rule: str, line: str) -> None:
    assert RULES[rule][1].search(line)


@pytest.mark.parametrize(("rule", "line"), ALLOWED_LINES)
def test_rule_allows(rule: str, line: str) -> None:
    assert not RULES[rule][1].search(line)
