"""The referee as a pure function: one test per row of CONTRACT §5's table (and the edges around each)."""

from datetime import UTC, datetime

import pytest

from mobile_api.conflicts import Action, Decision, Facts, conflicted_copy_name, decide


def node(rev=5, name_rev=1, parent_rev=1, content_rev=1, kind="file", content_hash="aa", **extra):
    return {"_id": "n1", "rev": rev, "name_rev": name_rev, "parent_rev": parent_rev, "content_rev": content_rev,
            "kind": kind, "content_hash": content_hash, "name": "a.txt", "parent_id": "p", **extra}


# row 1: a stale op touching only fields nobody else changed is applied
@pytest.mark.parametrize("op_type, changed", [("rename", {"parent_rev": 5}), ("rename", {"content_rev": 5}),
                                              ("move", {"name_rev": 5}), ("move", {"content_rev": 5})])
def test_stale_op_on_untouched_field_applies(op_type, changed):
    decision = decide(op_type, Facts(node=node(**changed)), base_rev=2)
    assert decision == Decision(Action.APPLY)
    assert decision.status == "applied"


def test_stale_content_edit_when_only_name_changed_applies():
    assert decide("commit_upload", Facts(node=node(name_rev=5, parent_rev=4), content_hash="bb"), 2).action \
        is Action.APPLY


# row 2: delete of a node renamed, moved or edited since base_rev
@pytest.mark.parametrize("changed", [{"name_rev": 5}, {"parent_rev": 5}, {"content_rev": 5}])
def test_delete_of_modified_node_keeps_it(changed):
    decision = decide("delete", Facts(node=node(**changed)), base_rev=2)
    assert (decision.action, decision.conflict, decision.resolution) == \
        (Action.KEEP_SERVER, "delete_modified", "kept_server")
    assert decision.status == "conflict"


def test_delete_of_unmodified_node_applies_even_when_rev_moved_by_trash_and_restore():
    assert decide("delete", Facts(node=node(rev=7)), base_rev=2).action is Action.APPLY


def test_delete_of_already_trashed_node_is_a_quiet_no_op():
    assert decide("delete", Facts(node=node(name_rev=5), node_trashed=True), base_rev=2) == Decision(Action.APPLY)


# row 3: rename/move/edit of a trashed node (also inside a trashed folder) restores and applies
@pytest.mark.parametrize("op_type", ["rename", "move", "commit_upload"])
def test_modify_of_trashed_node_restores_and_applies(op_type):
    decision = decide(op_type, Facts(node=node(), node_trashed=True, content_hash="bb"), base_rev=1)
    assert decision == Decision(Action.APPLY, "modify_deleted", "restored", restore=True)
    assert decision.status == "conflict"


def test_move_into_trashed_folder_restores_the_folder():
    decision = decide("move", Facts(node=node(), target_trashed=True), base_rev=1)
    assert (decision.action, decision.conflict, decision.restore) == (Action.APPLY, "modify_deleted", True)


@pytest.mark.parametrize("folder", [True, False])
def test_create_inside_trashed_folder_restores_it(folder):
    decision = decide("create_folder" if folder else "commit_upload", Facts(target_trashed=True, content_hash="x"))
    assert decision == Decision(Action.APPLY, "modify_deleted", "restored", restore=True)


# row 4: rename/move where the same field changed since base_rev keeps the server's value
@pytest.mark.parametrize("op_type, field", [("rename", "name_rev"), ("move", "parent_rev")])
def test_same_field_changed_keeps_server(op_type, field):
    decision = decide(op_type, Facts(node=node(**{field: 4})), base_rev=3)
    assert (decision.action, decision.conflict, decision.resolution) == \
        (Action.KEEP_SERVER, "modify_modified", "kept_server")


def test_same_field_changed_exactly_at_base_rev_is_not_stale():
    assert decide("rename", Facts(node=node(name_rev=3)), base_rev=3).action is Action.APPLY


# row 5: content edit on a stale base_rev keeps both
def test_edit_edit_makes_a_conflicted_copy():
    decision = decide("commit_upload", Facts(node=node(content_rev=4, content_hash="aa"), content_hash="bb"), 3)
    assert decision == Decision(Action.COPY, "edit_edit", "conflicted_copy")


def test_edit_to_the_same_content_is_no_conflict():
    assert decide("commit_upload", Facts(node=node(content_rev=4, content_hash="bb"), content_hash="bb"), 3).action \
        is Action.APPLY


# row 6: create with a taken name
def test_create_folder_over_folder_merges():
    decision = decide("create_folder", Facts(clash={"kind": "folder"}))
    assert decision == Decision(Action.MERGE, "name_taken", "merged")


@pytest.mark.parametrize("clash", [{"kind": "file", "content_hash": "aa"}, {"kind": "folder"}])
def test_new_file_with_taken_name_gets_conflicted_copy(clash):
    decision = decide("commit_upload", Facts(clash=clash, content_hash="bb"))
    assert decision == Decision(Action.COPY, "name_taken", "conflicted_copy")


def test_new_file_identical_to_the_taken_one_merges():
    assert decide("commit_upload", Facts(clash={"kind": "file", "content_hash": "bb"}, content_hash="bb")).action \
        is Action.MERGE


def test_create_folder_over_file_gets_conflicted_copy():
    assert decide("create_folder", Facts(clash={"kind": "file"})).action is Action.COPY


# row 7: move into own subtree
def test_move_into_own_subtree_is_rejected():
    decision = decide("move", Facts(node=node(kind="folder"), cycle=True), base_rev=5)
    assert (decision.status, decision.conflict) == ("rejected", "cycle")


def test_fresh_op_applies():
    for op_type in ("rename", "move", "delete"):
        assert decide(op_type, Facts(node=node()), base_rev=5) == Decision(Action.APPLY)


def test_missing_node_is_a_programming_error():
    with pytest.raises(ValueError):
        decide("rename", Facts(), base_rev=1)


# conflicted-copy names
WHEN = datetime(2026, 3, 7, 23, 59, tzinfo=UTC)


@pytest.mark.parametrize("name, expected", [
    ("report.docx", "report (conflicted copy from Pixel 8 2026-03-07).docx"),
    ("archive.tar.gz", "archive.tar (conflicted copy from Pixel 8 2026-03-07).gz"),
    (".bashrc", ".bashrc (conflicted copy from Pixel 8 2026-03-07)"),
    ("Makefile", "Makefile (conflicted copy from Pixel 8 2026-03-07)"),
    ("photo.", "photo (conflicted copy from Pixel 8 2026-03-07)."),
])
def test_conflicted_copy_name(name, expected):
    assert conflicted_copy_name(name, "Pixel 8", WHEN) == expected


def test_conflicted_copy_name_second_attempt_and_length():
    assert conflicted_copy_name("a.txt", "P", WHEN, 2) == "a (conflicted copy from P 2026-03-07 2).txt"
    long = conflicted_copy_name("é" * 200 + ".txt", "Pixel", WHEN)
    assert len(long.encode()) <= 255 and long.endswith("(conflicted copy from Pixel 2026-03-07).txt")
