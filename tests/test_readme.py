"""The README's set-up commands are what CI runs and what a new user types."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text):
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = [b.strip() for b in _bash_blocks(readme)]
    test_cmd = next(b for b in blocks if "pytest" in b and "pip install" in b)
    main_cmd = next(b for b in blocks if "vfmatch run" in b and "pip install" in b)
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci, "README's test command and .ci/run disagree"
    assert "-c constraints.txt" in main_cmd and "-c constraints.txt" in test_cmd


def test_constraints_pin_the_tested_torch_stack():
    pins = dict(
        line.split("==", 1) for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line
    )
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1" and pins["torchaudio"] == "2.11.0"
    for name in ("timm", "transformers", "datasets", "scikit-learn"):
        assert name in pins


def test_every_public_name_resolves():
    import vfmatch

    for name in vfmatch.__all__:
        assert getattr(vfmatch, name) is not None, name
