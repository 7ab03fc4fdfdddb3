"""Exercises with instant feedback and worked solutions.

Each notebook's exercises live in a module ``mmcourse.exercises.nbXX`` that registers them:

    register("03.concat", check=_check_concat, solution=_solution_concat,
             hint="Stack the weight matrices side by side.")

``check(answer)`` raises AssertionError with a helpful message when the answer is wrong (and
may raise NotImplementedError for an untouched template); ``solution()`` returns a correct
answer. In a notebook the learner calls

    from mmcourse.exercises import check, show_solution
    check("03.concat", my_answer)     # ✓ / ✗ with feedback, never raises
    show_solution("03.concat")        # prints the worked solution's source

An untouched exercise (``None``, ``...`` or code that raises NotImplementedError) reports
"not attempted yet" and the notebook carries on. tests/test_exercises.py proves that every
registered solution passes its own check.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import textwrap
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Exercise:
    key: str
    check: Callable[[object], None]
    solution: Callable[[], object]
    hint: str = ""


_REGISTRY: dict[str, Exercise] = {}


def register(key: str, check: Callable, solution: Callable, hint: str = "") -> Exercise:
    """Add an exercise; ``key`` is "<notebook number>.<short name>", e.g. "01.zscore"."""
    if key in _REGISTRY and _REGISTRY[key].check is not check:
        raise ValueError(f"exercise key {key!r} is registered twice")
    exercise = Exercise(key, check, solution, hint)
    _REGISTRY[key] = exercise
    return exercise


def all_exercises() -> dict[str, Exercise]:
    """Every exercise of every notebook (imports all ``nbXX`` modules)."""
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("nb"):
            importlib.import_module(f"{__name__}.{info.name}")
    return dict(_REGISTRY)


def get(key: str) -> Exercise:
    """Look an exercise up, importing its notebook's module on first use."""
    if key not in _REGISTRY:
        notebook = key.split(".", 1)[0]
        try:
            importlib.import_module(f"{__name__}.nb{notebook}")
        except ModuleNotFoundError:
            pass
    if key not in _REGISTRY:
        known = ", ".join(sorted(all_exercises())) or "none"
        raise KeyError(f"no exercise named {key!r}; known exercises: {known}")
    return _REGISTRY[key]


def _untouched(answer) -> bool:
    return answer is None or answer is Ellipsis


def check(key: str, answer, quiet: bool = False) -> bool:
    """Give feedback on ``answer``; return True when it is right. Never raises for a wrong
    or unfinished answer, so that a class can run the notebook top to bottom."""
    exercise = get(key)
    say = (lambda *_: None) if quiet else print
    if _untouched(answer):
        say(f"… Exercise {key}: not attempted yet. Hint: {exercise.hint}")
        return False
    try:
        exercise.check(answer)
    except NotImplementedError:
        say(f"… Exercise {key}: not attempted yet. Hint: {exercise.hint}")
        return False
    except AssertionError as exc:
        say(f"✗ Exercise {key}: not quite. {exc}\n  Hint: {exercise.hint}")
        return False
    except Exception as exc:  # the learner's code crashed: show why, keep the notebook going
        say(f"✗ Exercise {key}: your answer raised {type(exc).__name__}: {exc}")
        return False
    say(f"✓ Exercise {key}: correct!")
    return True


def solution_source(key: str) -> str:
    """The source code of the worked solution."""
    return textwrap.dedent(inspect.getsource(get(key).solution))


def solutions_hidden() -> bool:
    """True in the student edition (``make student`` sets ``MMCOURSE_EDITION=student`` in its
    first cell; a JupyterHub can set it for a whole class)."""
    return os.environ.get("MMCOURSE_EDITION", "").strip().lower() == "student"


def show_solution(key: str) -> None:
    """Print the worked solution (try the exercise first!); only a hint in the student edition."""
    if solutions_hidden():
        print(
            f"Solutions are hidden in the student edition of the course. "
            f'check("{key}", your_answer) still tells you whether your answer is right.\n'
            f"Hint: {get(key).hint}"
        )
        return
    print(f"Worked solution for exercise {key}:\n")
    print(solution_source(key))
