"""`--nproc-per-node` and the other counts read from text take ASCII digits only: no traceback for "²"."""
import pytest

from cvatflow.errors import CvatflowError
from cvatflow.numbers import whole_number
from cvatflow.training.cli import _self_launch


@pytest.mark.parametrize("value", ["²", "٣", "9" * 5000, "-2", "0", "two", ""])
def test_a_process_count_that_is_no_small_whole_number_is_one_clear_error(value):
    with pytest.raises(CvatflowError, match="give a number of processes"):
        _self_launch(value)


def test_one_process_runs_in_this_process():
    assert _self_launch("1") is None


@pytest.mark.parametrize(("text", "number"), [("12", 12), (" 7 ", 7), ("0", 0), ("²", None), ("1e3", None),
                                              ("9" * 10, None), (None, None), ("", None), ("+3", None)])
def test_whole_number_takes_a_few_ascii_digits_only(text, number):
    assert whole_number(text) == number
