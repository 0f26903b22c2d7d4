"""A daemon loads only what it serves: a file-only daemon that has mounted file objects
has not imported boto3, hvac, requests, jinja2 or cryptography; the first template loads
jinja2, the first Vault object hvac, and still no boto3."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUARD = 60.0  # seconds: only against a hang, never the thing asserted
HEAVY = ("boto3", "botocore", "hvac", "requests", "jinja2", "jsonschema", "cryptography")

SCRIPT = textwrap.dedent("""
    import asyncio, json, sys
    from pathlib import Path
    import grpc
    from csiprovider.server import ServeConfig, serve
    from csiprovider.v1alpha1 import service_pb2 as pb, service_pb2_grpc as pb_grpc

    HEAVY = {heavy!r}
    GUARD = {guard!r}  # seconds: only against a hang, never the thing asserted
    tmp = Path(sys.argv[1])

    def loaded():
        return sorted(m for m in HEAVY if m in sys.modules)

    def request(objects):
        return pb.MountRequest(attributes=json.dumps({{
            "objects": objects, "csi.storage.k8s.io/pod.namespace": "default",
            "csi.storage.k8s.io/pod.name": "p", "csi.storage.k8s.io/pod.uid": "u"}}),
            secrets="{{}}", target_path=str(tmp), permission="420")

    async def main():
        stop = asyncio.Event()
        config = ServeConfig(names=["csiprovider"], providers_dir=tmp / "providers",
                             write_mode="driver", file_root=tmp / "root", hmac_key_file=None,
                             mount_timeout=GUARD, shutdown_grace=1, fetch_workers=4)
        task = asyncio.create_task(serve(config, stop))
        while not (tmp / "providers" / "csiprovider.sock").exists():
            if task.done():
                task.result()  # serve failed: say why
            await asyncio.sleep(0.02)
        stages = {{"started": loaded()}}
        async with grpc.aio.insecure_channel(f"unix://{{tmp}}/providers/csiprovider.sock") as ch:
            stub = pb_grpc.CSIDriverProviderStub(ch)
            await stub.Mount(request("- {{objectName: a, backend: file, path: a}}"))
            stages["file mount"] = loaded()
            await stub.Mount(request("- {{objectName: a, backend: file, path: a, render: false}}\\n"
                                     "- {{objectName: t, template: 'x{{{{ objects[\\"a\\"] }}}}'}}"))
            stages["template"] = loaded()
            try:
                await stub.Mount(request("- {{objectName: v, backend: vault, secretPath: s, "
                                         "roleName: r, vaultAddress: 'http://127.0.0.1:9'}}"),
                                 timeout=GUARD)
            except grpc.aio.AioRpcError as exc:
                stages["vault answer"] = exc.code().name
            stages["vault object"] = loaded()
        stop.set()
        await task
        print(json.dumps(stages))

    asyncio.run(main())
""")


def test_a_daemon_imports_only_what_it_serves(tmp_path: Path) -> None:
    (tmp_path / "root" / "default").mkdir(parents=True)
    (tmp_path / "root" / "default" / "a").write_text("x")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(heavy=HEAVY, guard=GUARD), str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=2 * GUARD,
        check=True,
    )
    stages = json.loads(out.stdout.strip().splitlines()[-1])
    assert stages["started"] == []
    assert stages["file mount"] == ["jsonschema"]  # native SPCs are schema-checked
    assert stages["template"] == ["jinja2", "jsonschema"]
    # no token for Vault in the request: refused by the Vault backend, so it was loaded
    assert stages["vault answer"] == "FAILED_PRECONDITION"
    assert "hvac" in stages["vault object"] and "boto3" not in stages["vault object"]
    assert "cryptography" not in stages["vault object"]
