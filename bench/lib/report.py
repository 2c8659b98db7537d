"""Rows of the results table, number formatting, and the markdown output."""

from dataclasses import dataclass, field


@dataclass
class Row:
    figure: str
    pmr: str
    pm2: str
    ratio: str = "—"
    target: str = "—"
    ok: object = None  # True / False / None (no target, or not measurable)

    def cells(self):
        mark = {True: " ✅", False: " ❌", None: ""}[self.ok]
        return [self.figure, self.pmr, self.pm2, self.ratio, self.target + mark]


@dataclass
class Section:
    """What one figure family returns: table rows and a details paragraph."""
    title: str
    rows: list = field(default_factory=list)
    details: list = field(default_factory=list)  # markdown lines


def not_measurable(why):
    return f"not measurable: {why}"


def fmt_mb(kb):
    return "—" if kb is None else f"{kb / 1024:.1f} MB"


def fmt_ms(s):
    if s is None:
        return "—"
    ms = s * 1000
    return f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def fmt_rps(x):
    return "—" if x is None else f"{x / 1000:.1f}k req/s"


def ratio(a, b):
    """pmr/PM2 as text: '0.12× (1/8.3)' below 1, '1.05×' otherwise."""
    if a is None or b is None or b == 0:
        return "—"
    r = a / b
    if r == 0:
        return "0×"
    if r < 1:
        return f"{r:.3f}× (1/{1 / r:.1f})"
    return f"{r:.2f}×"


def table(rows):
    head = ["figure", "pmr", "PM2", "pmr/PM2", "target"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in r.cells()) + " |")
    return "\n".join(lines)
