"""Packaging that pyproject.toml cannot express: the repository's data/ folder (the verified
datasets and their data card) ships inside the wheel as ``mmcourse/_data``, so that a
``pip install`` of the course has everything the notebooks need. data/ stays where it is for
a clone; ``mmcourse.datasets.cache.data_dir`` finds either."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["mmcourse*"]), "mmcourse._data"],
    package_dir={"mmcourse._data": "data"},
)
