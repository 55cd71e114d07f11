"""The package list; everything else is in pyproject.toml.

``web/`` (the tablet page and the staff dashboard) stays at the top of the
repository and is shipped as the package ``edge.web``, so an installed wheel
serves the pages (``edge/api/settings.py`` looks there first).
"""

from setuptools import find_packages, setup

PACKAGES = ["edge*", "drivers*", "vision*", "sync*", "cloud_api*"]

setup(
    packages=[*find_packages(include=PACKAGES), "edge.web"],
    package_dir={"edge.web": "web"},
)
