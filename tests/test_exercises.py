"""The exercise mechanism, and every registered exercise's worked solution."""

import pytest

from mmcourse import exercises
from mmcourse.exercises import check, show_solution, solution_source

ALL = exercises.all_exercises()


def test_every_notebook_module_registers_exercises():
    assert ALL, "no exercises registered"
    notebooks = {key.split(".")[0] for key in ALL}
    assert "00" in notebooks


@pytest.mark.parametrize("key", sorted(ALL))
def test_worked_solution_passes_its_check(key):
    assert check(key, ALL[key].solution(), quiet=True), f"solution of {key} fails its check"


@pytest.mark.parametrize("key", sorted(ALL))
def test_untouched_exercise_reports_and_does_not_raise(key, capsys):
    assert check(key, None) is False
    assert "not attempted yet" in capsys.readouterr().out


@pytest.mark.parametrize("key", sorted(ALL))
def test_solution_source_is_shown(key, capsys):
    show_solution(key)
    assert solution_source(key).strip() in capsys.readouterr().out


def test_feedback_for_wrong_crashing_and_unfinished_answers(capsys):
    assert check("00.pipeline", ["input", "fusion"]) is False
    assert "missing" in capsys.readouterr().out

    def crashes():
        raise ZeroDivisionError("oops")

    assert check("00.count", crashes) is False
    assert "ZeroDivisionError" in capsys.readouterr().out

    def unfinished():
        raise NotImplementedError

    assert check("00.count", unfinished) is False
    assert "not attempted" in capsys.readouterr().out


def test_unknown_exercise_lists_the_known_ones():
    with pytest.raises(KeyError, match="00.pipeline"):
        check("99.nothing", 1)


def test_a_key_cannot_be_registered_twice_with_another_check():
    with pytest.raises(ValueError, match="twice"):
        exercises.register("00.pipeline", lambda a: None, lambda: None)


def test_pipeline_accepts_the_diagrams_own_stage_names(capsys):
    named_as_in_the_diagram = [
        "Input data",
        "preprocessing",
        "feature extraction",
        "fusion",
        "prediction",
        "post-processing",
    ]
    assert check("00.pipeline", named_as_in_the_diagram) is True
    assert check("00.pipeline", list(reversed(named_as_in_the_diagram))) is False


@pytest.mark.parametrize(
    "wrong, diagnosis",
    [
        (lambda text: text.lower().split(), "no spaces"),
        (lambda text: [c for c in text.lower() if c.strip()], "cut into letters"),
        (lambda text: __import__("re").findall(r"[\u4e00-\u9fff]|[A-Za-z]+|\d+", text), "lower"),
    ],
)
def test_mixed_tokens_diagnoses_typical_mistakes(wrong, diagnosis, capsys):
    assert check("01.mixed_tokens", wrong) is False
    assert diagnosis in capsys.readouterr().out
