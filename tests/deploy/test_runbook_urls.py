"""Every alert links its runbook section through ``runbook_url``, and the section exists."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, spaces to '-', punctuation dropped."""
    headings = re.findall(r"^#+ (.+)$", markdown, re.M)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


def test_every_alert_has_a_runbook_url_to_its_section():
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    anchors = _anchors((DEPLOY / "README.md").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            url = rule["annotations"]["runbook_url"]
            page, _, anchor = url.partition("#")
            assert page == "deploy/README.md" and (DEPLOY.parent / page).is_file(), url
            assert anchor == rule["alert"].lower() and anchor in anchors, url
