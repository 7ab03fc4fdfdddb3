"""Exercises of notebook 00 (welcome)."""

from mmcourse.exercises import register

PIPELINE = [
    "input",
    "preprocessing",
    "feature extraction",
    "fusion",
    "prediction",
    "post-processing",
]
# Other names learners use for the same stage (the diagram says "input data").
ALIASES = {"input data": "input", "postprocessing": "post-processing"}


def _check_pipeline(answer):
    if not isinstance(answer, (list, tuple)):
        raise AssertionError("give a list of stage names, e.g. ['input', ...]")
    stages = [str(s).strip().lower() for s in answer]
    stages = [ALIASES.get(s, s) for s in stages]
    missing = [s for s in PIPELINE if s not in stages]
    assert not missing, f"these stages are missing: {missing}"
    assert len(stages) == len(PIPELINE), f"expected {len(PIPELINE)} stages, got {len(stages)}"
    first_wrong = (
        next(i for i, (a, b) in enumerate(zip(stages, PIPELINE)) if a != b)
        if stages != PIPELINE
        else None
    )
    assert first_wrong is None, (
        f"position {first_wrong + 1} should be {PIPELINE[first_wrong]!r}, not "
        f"{stages[first_wrong]!r}: what must exist before that step can run?"
    )


def _solution_pipeline():
    return [
        "input",
        "preprocessing",
        "feature extraction",
        "fusion",
        "prediction",
        "post-processing",
    ]


register(
    "00.pipeline",
    _check_pipeline,
    _solution_pipeline,
    hint="Raw data comes in first; explanations of the output come last.",
)


def _check_count(answer):
    from mmcourse.datasets import load_av_digits

    if callable(answer):
        answer = answer()
    if isinstance(answer, bool) or not hasattr(answer, "__index__"):
        raise AssertionError(f"expected a whole number, got {type(answer).__name__}")
    digits = load_av_digits()
    threes = digits.labels == 3
    assert int(answer) != int(threes.sum()), (
        "that counts every split: keep only the samples whose split is 'test'"
    )
    expected = int((threes & (digits.split == "test")).sum())
    assert int(answer) == expected, f"{answer} is not the number of test samples of digit 3"


def _solution_count():
    from mmcourse.datasets import load_av_digits

    digits = load_av_digits()
    is_test = digits.split == "test"
    is_three = digits.labels == 3
    return int((is_test & is_three).sum())


register(
    "00.count",
    _check_count,
    _solution_count,
    hint="Combine two boolean masks with & : digits.split == 'test' and digits.labels == 3.",
)
