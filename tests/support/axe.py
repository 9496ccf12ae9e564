"""axe-core in the browser tests: the pages a person meets, checked for accessibility."""

from __future__ import annotations

import json

from tests.support.app import ROOT

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"


def violations(page, impacts: tuple[str, ...] = ("critical", "serious")) -> list[dict]:
    """axe's WCAG 2 A/AA violations of these impacts on the page as it is now. The script
    is evaluated through the browser's debugging protocol, so the page's CSP (no inline
    script) stays as it is for everything else."""
    page.evaluate(AXE.read_text())
    result = page.evaluate("""async () => JSON.stringify(await axe.run(document, {
        runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}))""")
    found = json.loads(result)["violations"]
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["target"] for n in v["nodes"]][:5]} for v in found if v["impact"] in impacts]
