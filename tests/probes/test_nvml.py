"""NVML: started once per process, fork-safe, and the GPUs CUDA_VISIBLE_DEVICES leaves visible."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from taskmeter.probes import nvml as nvml_module
from taskmeter.probes.nvml import Nvml, resolve_visible_devices
from tests.fakes import GPU_IS_LOST, LIBRARY_NOT_FOUND, NO_PERMISSION, FakeGpu, FakeNvml, gpu_uuid


def machine() -> FakeNvml:
    """Three GPUs; the third has MIG on, with two MIG devices."""
    migs = [
        FakeGpu("MIG-11111111-aaaa-5555-8888-000000000001", gi=1, ci=0),
        FakeGpu("MIG-22222222-bbbb-5555-8888-000000000002", gi=2, ci=0),
    ]
    return FakeNvml([FakeGpu(gpu_uuid(0)), FakeGpu(gpu_uuid(1)), FakeGpu(gpu_uuid(2), migs=migs)])


def visible(fake: FakeNvml, value: str | None) -> list[str]:
    return [d.uuid for d in resolve_visible_devices(fake, value)]


def test_unset_means_every_gpu() -> None:
    fake = machine()
    assert visible(fake, None) == [gpu_uuid(0), gpu_uuid(1), gpu_uuid(2)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", [1]),
        ("2,0", [2, 0]),
        ("", []),
        ("0,-1,1", [0]),  # CUDA stops at the first invalid entry
        ("0,7,1", [0]),  # an index beyond the GPUs is invalid too
        ("1,1,0", [1, 0]),  # repeats are dropped
        (" 1 , 0 ", [1, 0]),
        ("garbage,0", []),
    ],
)
def test_indices(value: str, expected: list[int]) -> None:
    assert visible(machine(), value) == [gpu_uuid(i) for i in expected]


def test_uuids_and_unique_prefixes() -> None:
    fake = machine()
    assert visible(fake, f"{gpu_uuid(1)},{gpu_uuid(0)}") == [gpu_uuid(1), gpu_uuid(0)]
    assert visible(fake, gpu_uuid(2)[:12].lower()) == [gpu_uuid(2)]
    # "GPU-0000000" is a prefix of all three: ambiguous, so nothing is visible.
    assert visible(fake, "GPU-0000000") == []


def test_mig_uuid_selects_a_mig_device_of_its_gpu() -> None:
    fake = machine()
    devices = resolve_visible_devices(fake, "MIG-22222222-bbbb-5555-8888-000000000002")
    assert [(d.uuid, d.gpu_uuid, d.is_mig) for d in devices] == [
        ("MIG-22222222-bbbb-5555-8888-000000000002", gpu_uuid(2), True)
    ]
    assert devices[0].gpu_handle is fake.gpus[2]


def test_legacy_mig_form_by_gpu_and_instance_ids() -> None:
    fake = machine()
    devices = resolve_visible_devices(fake, f"MIG-{gpu_uuid(2)}/1/0,MIG-{gpu_uuid(2)}/9/0")
    assert [d.uuid for d in devices] == ["MIG-11111111-aaaa-5555-8888-000000000001"]


def test_two_mig_devices_of_one_gpu_are_one_gpu_for_energy() -> None:
    fake = machine()
    nvml = Nvml(
        fake,
        environ={
            "CUDA_VISIBLE_DEVICES": "MIG-11111111-aaaa-5555-8888-000000000001,"
            "MIG-22222222-bbbb-5555-8888-000000000002"
        },
    )
    assert len(nvml.devices()) == 2
    assert [g.gpu_uuid for g in nvml.gpus()] == [gpu_uuid(2)]


def test_started_once_for_every_user() -> None:
    fake = machine()
    nvml = Nvml(fake, environ={})
    assert nvml.start() and nvml.start()
    assert len(nvml.devices()) == 3
    assert fake.init_calls == 1
    nvml.shutdown()
    assert fake.shutdown_calls == 1


def test_missing_library_is_a_reason_not_an_error() -> None:
    nvml = Nvml(FakeNvml([], init_error=LIBRARY_NOT_FOUND), environ={})
    assert not nvml.start()
    assert nvml.devices() == ()
    assert nvml.reason is not None and "Library Not Found" in nvml.reason


def test_real_pynvml_without_a_driver_is_a_reason_not_an_error() -> None:
    """The real module, on a machine without libnvidia-ml: no GPU, no exception."""
    pynvml = pytest.importorskip("pynvml")
    nvml = Nvml(pynvml, environ={})
    if nvml.start():
        pytest.skip("this machine has an NVIDIA driver")
    assert nvml.reason


def test_module_not_installed_names_the_package_and_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reason names the missing package and the install command, once each."""
    monkeypatch.setattr(nvml_module, "NVML_MODULE", "taskmeter_no_such_module")
    nvml = Nvml(environ={})
    assert not nvml.start()
    assert nvml.reason == "nvidia-ml-py is not installed (pip install 'taskmeter[gpu]')"


def test_no_visible_gpu_is_a_reason() -> None:
    nvml = Nvml(machine(), environ={"CUDA_VISIBLE_DEVICES": "-1"})
    assert not nvml.start()
    assert nvml.reason is not None and "CUDA_VISIBLE_DEVICES='-1'" in nvml.reason


def test_listing_failure_is_a_reason() -> None:
    fake = machine()

    def lost() -> int:
        raise fake.NVMLError(15)

    fake.nvmlDeviceGetCount = lost  # type: ignore[method-assign]
    nvml = Nvml(fake, environ={})
    assert not nvml.start()
    assert nvml.reason is not None and "could not list" in nvml.reason


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_forked_child_starts_nvml_again_for_itself() -> None:
    """The child does not reuse the parent's handles, and only the parent shuts down its own."""
    fake = machine()
    nvml = Nvml(fake, environ={})
    assert nvml.start()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(read_end)
            devices = nvml.devices()
            os.write(write_end, json.dumps([fake.init_calls, len(devices)]).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child_init_calls, child_devices = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert (child_init_calls, child_devices) == (2, 3)
    assert fake.init_calls == 1  # the parent's copy


def test_shutdown_in_another_process_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = machine()
    nvml = Nvml(fake, environ={})
    nvml.start()
    monkeypatch.setattr(nvml_module.os, "getpid", lambda: -1)
    nvml.shutdown()
    assert fake.shutdown_calls == 0


def test_without_any_trace_of_the_driver_pynvml_is_not_imported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """On Linux with no NVIDIA kernel driver, WSL GPU or NVML library in the linker's
    cache, NVML cannot start: the reason says so, and pynvml is not imported for it."""
    imported: list[str] = []
    monkeypatch.setattr(nvml_module.sys, "platform", "linux")
    monkeypatch.setattr(nvml_module, "DRIVER_TRACES", (str(tmp_path / "nvidia*"),))
    monkeypatch.setattr(nvml_module, "LINKER_CACHE", str(tmp_path / "ld.so.cache"))
    monkeypatch.setattr(nvml_module.importlib, "import_module", imported.append)
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    (tmp_path / "ld.so.cache").write_bytes(b"\0libc.so.6\0/lib/libc.so.6\0")
    nvml = Nvml(environ={})
    assert not nvml.start()
    assert nvml.reason is not None and "no NVIDIA driver" in nvml.reason
    assert imported == []


@pytest.mark.parametrize("trace", ["device", "library in the cache", "LD_LIBRARY_PATH"])
def test_any_trace_of_the_driver_lets_nvml_be_tried(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, trace: str
) -> None:
    """A device node, the library in the linker's cache (its module loaded on first use), or
    the library on LD_LIBRARY_PATH: NVML is tried."""
    monkeypatch.setattr(nvml_module.sys, "platform", "linux")
    monkeypatch.setattr(nvml_module, "DRIVER_TRACES", (str(tmp_path / "dev" / "nvidia*"),))
    monkeypatch.setattr(nvml_module, "LINKER_CACHE", str(tmp_path / "ld.so.cache"))
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    (tmp_path / "ld.so.cache").write_bytes(b"\0libc.so.6\0")
    (tmp_path / "dev").mkdir()
    if trace == "device":
        (tmp_path / "dev" / "nvidiactl").touch()
    elif trace == "library in the cache":
        (tmp_path / "ld.so.cache").write_bytes(b"\0libnvidia-ml.so.1\0/usr/lib/libnvidia-ml.so.1\0")
    else:
        (tmp_path / "lib").mkdir()
        (tmp_path / "lib" / "libnvidia-ml.so.1").touch()
        monkeypatch.setenv("LD_LIBRARY_PATH", f"/nonexistent:{tmp_path / 'lib'}")
    fake = machine()
    monkeypatch.setattr(nvml_module.importlib, "import_module", lambda name: fake)
    nvml = Nvml(environ={})
    assert nvml.start()
    assert fake.init_calls == 1


@pytest.mark.parametrize("error", [GPU_IS_LOST, NO_PERMISSION])
def test_a_gpu_nvml_cannot_reach_is_left_out_and_the_others_are_kept(error: int) -> None:
    """One GPU of three lost (fallen off the bus) or not this process's (no permission on
    its device node): the process cannot use it, and the other GPUs are still its own,
    with every GPU visible or named by UUID."""
    fake = machine()
    fake.gpus[1].handle_error = error
    assert visible(fake, None) == [gpu_uuid(0), gpu_uuid(2)]
    assert visible(fake, f"{gpu_uuid(2)},{gpu_uuid(0)}") == [gpu_uuid(2), gpu_uuid(0)]
    assert visible(fake, "MIG-22222222-bbbb-5555-8888-000000000002") == [
        "MIG-22222222-bbbb-5555-8888-000000000002"
    ]
    nvml = Nvml(fake, environ={})
    assert nvml.start() and nvml.reason is None
    assert [g.index for g in nvml.gpus()] == [0, 2]


def test_indices_beside_a_gpu_nvml_cannot_reach_give_no_gpu_and_say_why() -> None:
    """With a GPU NVML cannot reach, which CUDA index is which GPU is unknown (CUDA may
    or may not count it): no GPU rather than perhaps the wrong one, and the reason
    says to name the GPUs by UUID; so for a UUID prefix that might be the lost GPU's."""
    fake = machine()
    fake.gpus[1].handle_error = GPU_IS_LOST
    nvml = Nvml(fake, environ={"CUDA_VISIBLE_DEVICES": "0,2"})
    assert not nvml.start()
    assert nvml.reason is not None
    assert "GPU 1" in nvml.reason and "UUID" in nvml.reason
    prefix = Nvml(fake, environ={"CUDA_VISIBLE_DEVICES": "GPU-00000002"})
    assert not prefix.start()
    assert prefix.reason is not None and "UUID" in prefix.reason
