"""A gate policy file that is empty is an error, not silently the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowbill.errors import PolicyError
from shadowbill.reconcile.policy import DEFAULT_POLICY, load_policy


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_an_empty_policy_file_is_an_error_naming_it(tmp_path: Path, text: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=r"policy\.yaml: the policy file is empty") as caught:
        load_policy(path)
    assert "\n" not in str(caught.value)


def test_explicit_empty_mapping_and_no_file_mean_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("{}\n")
    assert load_policy(path) == DEFAULT_POLICY
    assert load_policy(None) == DEFAULT_POLICY
