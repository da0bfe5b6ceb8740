"""Packaging: maps the rooms under services/ to `pktflow.*` import names and
generates the protobuf/gRPC modules from protos/ at build time."""
import pathlib
import shutil
import tempfile

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent.resolve()
PROTOS = HERE / "protos"
GENERATED = HERE / "services" / "sdk" / "v1"   # becomes the package pktflow.v1


def generate_protos():
    from grpc_tools import protoc
    import grpc_tools

    GENERATED.mkdir(exist_ok=True)
    (GENERATED / "__init__.py").write_text('"""Generated from protos/pktflow/v1 at build time; do not edit."""\n')
    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    out = pathlib.Path(tempfile.mkdtemp(prefix="pktflow-protoc-"))
    files = sorted(str(p) for p in (PROTOS / "pktflow" / "v1").glob("*.proto"))
    rc = protoc.main(["protoc", f"-I{PROTOS}", f"-I{include}", f"--python_out={out}", f"--pyi_out={out}",
                      f"--grpc_python_out={out}", *files])
    if rc != 0:
        raise SystemExit(f"protoc failed on {files}")
    for f in (out / "pktflow" / "v1").iterdir():
        shutil.move(str(f), GENERATED / f.name)
    shutil.rmtree(out)


# Generated before setuptools looks for the package directories (they must exist).
generate_protos()

packages = ["pktflow", "pktflow.v1"] + [
    "pktflow.services" + ("." + p if p else "")
    for p in [""] + find_packages("services", exclude=["sdk", "sdk.*"])
]
setup(
    packages=packages,
    package_dir={"pktflow": "services/sdk", "pktflow.services": "services"},
    package_data={"pktflow": ["topologies/*.yaml", "exec_site/*.py"], "pktflow.v1": ["*.pyi"]},
)
