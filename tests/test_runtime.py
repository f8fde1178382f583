"""Process settings chosen from the machine: MKL's AMD code path only on AMD processors."""

import os

import pytest

from pdfewshot import runtime


@pytest.mark.parametrize(("vendor", "expected"), [("AuthenticAMD", "5"), ("GenuineIntel", None), (None, None)])
def test_mkl_code_path_is_set_on_amd_only(
    vendor: str | None, expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MKL_DEBUG_CPU_TYPE", raising=False)
    monkeypatch.setattr(runtime, "cpu_info", lambda: {"vendor_id": vendor} if vendor else {})
    runtime.configure_runtime()
    assert os.environ.get("MKL_DEBUG_CPU_TYPE") == expected


def test_a_setting_the_user_made_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MKL_DEBUG_CPU_TYPE", "2")
    monkeypatch.setattr(runtime, "cpu_info", lambda: {"vendor_id": "AuthenticAMD"})
    runtime.configure_runtime()
    assert os.environ["MKL_DEBUG_CPU_TYPE"] == "2"
