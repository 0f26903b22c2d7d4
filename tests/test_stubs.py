"""The committed gRPC stubs are exactly what grpcio-tools makes of proto/, and the
proto matches the driver's wire contract field for field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from csiprovider.v1alpha1 import service_pb2 as pb

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ("service_pb2.py", "service_pb2.pyi", "service_pb2_grpc.py")


def test_committed_stubs_match_proto(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-Icsiprovider=proto",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            "proto/v1alpha1/service.proto",
        ],
        cwd=ROOT,
        check=True,
    )
    for name in GENERATED:
        fresh = (tmp_path / "csiprovider" / "v1alpha1" / name).read_text()
        committed = (ROOT / "csiprovider" / "v1alpha1" / name).read_text()
        assert committed == fresh, f"{name} is stale: run `make proto` and commit the result"


def _fields(message: type) -> dict[str, tuple[int, int, str]]:
    desc = message.DESCRIPTOR  # type: ignore[attr-defined]
    return {
        f.name: (f.number, f.type, f.message_type.full_name if f.message_type else "")
        for f in desc.fields
    }


def test_wire_contract_matches_driver() -> None:
    s, i32, b, m = 9, 5, 12, 11  # FieldDescriptor.TYPE_STRING, TYPE_INT32, TYPE_BYTES, TYPE_MESSAGE
    assert pb.DESCRIPTOR.package == "v1alpha1"
    service = pb.DESCRIPTOR.services_by_name["CSIDriverProvider"]
    assert service.full_name == "v1alpha1.CSIDriverProvider"
    assert {
        m_.name: (m_.input_type.full_name, m_.output_type.full_name) for m_ in service.methods
    } == {
        "Version": ("v1alpha1.VersionRequest", "v1alpha1.VersionResponse"),
        "Mount": ("v1alpha1.MountRequest", "v1alpha1.MountResponse"),
    }
    assert _fields(pb.VersionRequest) == {"version": (1, s, "")}
    assert _fields(pb.VersionResponse) == {
        "version": (1, s, ""),
        "runtime_name": (2, s, ""),
        "runtime_version": (3, s, ""),
    }
    assert _fields(pb.MountRequest) == {
        "attributes": (1, s, ""),
        "secrets": (2, s, ""),
        "target_path": (3, s, ""),
        "permission": (4, s, ""),
        "current_object_version": (5, m, "v1alpha1.ObjectVersion"),
    }
    assert _fields(pb.MountResponse) == {
        "object_version": (1, m, "v1alpha1.ObjectVersion"),
        "error": (2, m, "v1alpha1.Error"),
        "files": (3, m, "v1alpha1.File"),
    }
    assert _fields(pb.File) == {"path": (1, s, ""), "mode": (2, i32, ""), "contents": (3, b, "")}
    assert _fields(pb.ObjectVersion) == {"id": (1, s, ""), "version": (2, s, "")}
    assert _fields(pb.Error) == {"code": (1, s, "")}
    for message, name in (
        (pb.MountRequest, "current_object_version"),
        (pb.MountResponse, "object_version"),
        (pb.MountResponse, "files"),
    ):
        assert message.DESCRIPTOR.fields_by_name[name].is_repeated, name
