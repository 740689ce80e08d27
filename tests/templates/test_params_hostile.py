"""Parameter values a hostile or careless user types: one problem each, never a traceback."""
from __future__ import annotations

import pytest

from cvatflow.errors import ProblemsError
from cvatflow.params import autofill
from cvatflow.templates import get_template


@pytest.mark.parametrize("gpus", ["²", "9" * 5000, "٣", "0", "-1"])
def test_gpus_that_is_no_plain_whole_number_is_one_problem(gpus):
    # "²" passed str.isdigit() into int() (ValueError), and 5,000 digits exceeded int()'s limit: tracebacks
    with pytest.raises(ProblemsError) as excinfo:
        autofill(get_template("maskrcnn-training"), {"gpus": gpus})
    assert any(p.path == "gpus" for p in excinfo.value.problems)
