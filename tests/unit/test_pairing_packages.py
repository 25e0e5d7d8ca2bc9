"""The typed settings of NAS packages (functions/pairing/packages.py): what a report and a change may hold."""

from __future__ import annotations

import pytest

from devices.packages import DEMO_PACKAGES
from functions.pairing.packages import BadMessage, check_report, settings_problems, value_problem


def test_the_reference_agents_demo_packages_pass_the_servers_checks():
    checked = check_report([{**p, "values": {}} for p in DEMO_PACKAGES])
    assert [p["name"] for p in checked] == ["media-server", "backup"]
    assert checked[0]["values"]["port"] == 8096  # a missing value shows its default


@pytest.mark.parametrize("spec, value, ok", [
    ({"type": "boolean"}, True, True), ({"type": "boolean"}, 1, False),
    ({"type": "integer", "min": 1, "max": 3}, 3, True), ({"type": "integer", "min": 1, "max": 3}, 4, False),
    ({"type": "integer"}, 2.5, False), ({"type": "integer"}, True, False), ({"type": "number"}, 2.5, True),
    ({"type": "number"}, float("nan"), False), ({"type": "number"}, "2", False),
    ({"type": "string", "max_length": 3}, "abc", True), ({"type": "string", "max_length": 3}, "abcd", False),
    ({"type": "string", "max_length": 3}, "a\x00", False),
    ({"type": "enum", "choices": ["a", "b"]}, "b", True), ({"type": "enum", "choices": ["a", "b"]}, "c", False),
])
def test_values_fit_their_declared_type(spec, value, ok):
    assert (value_problem({"key": "k", **spec}, value) is None) is ok


@pytest.mark.parametrize("package", [
    {"name": "Bad Name", "version": "1", "settings": []},
    {"name": "p", "settings": []},  # no version
    {"name": "p", "version": "1", "settings": [{"key": "k", "type": "color"}]},
    {"name": "p", "version": "1", "settings": [{"key": "k", "type": "enum", "choices": []}]},
    {"name": "p", "version": "1", "settings": [{"key": "k", "type": "integer", "min": 5, "max": 1}]},
    {"name": "p", "version": "1", "settings": [{"key": "k", "type": "integer", "default": "x"}]},
    {"name": "p", "version": "1", "settings": [{"key": "k", "type": "boolean"}, {"key": "k", "type": "boolean"}]},
    {"name": "p", "version": "1", "settings": [{"key": "k", "type": "boolean"}], "values": {"other": True}},
    {"name": "p", "version": "1", "settings": [{"key": "k", "type": "boolean"}], "values": {"k": "yes"}},
])
def test_a_report_that_breaks_the_rules_is_refused_whole(package):
    with pytest.raises(BadMessage):
        check_report([package])


def test_a_change_names_every_problem():
    specs = [{"key": "port", "type": "integer", "min": 1024}, {"key": "on", "type": "boolean", "label": "On"}]
    problems = settings_problems(specs, {"port": 80, "on": "yes", "nope": 1})
    assert {p["key"] for p in problems} == {"port", "on", "nope"}
    assert settings_problems(specs, {}) and settings_problems(specs, [1])
    assert settings_problems(specs, {"port": 2048, "on": False}) == []
