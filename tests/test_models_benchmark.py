"""The model benchmark CLI: a real timing on a tiny model, one-line errors with exit status 2."""
from __future__ import annotations

import pytest

from nets.models.benchmark import format_table, main, time_training_step


def test_timing_of_a_tiny_model():
    timing = time_training_step("mlp_resnet", batch=8, repeats=2)
    assert timing.parameters == (2 * 4 + 4) + 10 * 2 * (4 * 4 + 4) + (4 * 2 + 2)  # opening, 10 blocks, fc
    assert timing.plain_ms > 0 and timing.noisy_ms > 0
    assert "| mlp_resnet |" in format_table([timing], 8, 1)


@pytest.mark.parametrize("argv", [["--models", "resnet18"], ["--batch", "0", "--models", "mlp_resnet"],
                                  ["--repeats", "x"]])
def test_bad_arguments_give_one_line_and_status_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
