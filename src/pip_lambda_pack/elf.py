"""Whether a shared object built on this machine can load on a Lambda target.

The rule is manylinux's, applied to one ``.so``: it is for the target's machine, the glibc
symbol versions it needs are no newer than the target's glibc, and every library it links
is one the manylinux policy lets a wheel assume (libc, libm, libstdc++, ...) or one the wheel
ships itself. Needs the optional ``pyelftools`` (``pip-lambda-pack[native]``).
"""

from __future__ import annotations

import io
import re
from collections.abc import Collection

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection

from .target import Target

MACHINES = {"x86_64": "EM_X86_64", "aarch64": "EM_AARCH64"}
# The libraries every manylinux wheel may link without shipping them (PEP 600's policy).
SYSTEM_LIBRARIES = frozenset(
    {
        "libc.so.6",
        "libm.so.6",
        "libdl.so.2",
        "librt.so.1",
        "libpthread.so.0",
        "libgcc_s.so.1",
        "libstdc++.so.6",
        "libcrypt.so.1",
        "libutil.so.1",
        "libnsl.so.1",
        "ld-linux-x86-64.so.2",
        "ld-linux-aarch64.so.1",
    }
)
_VERSION = re.compile(r"^GLIBC_(\d+)\.(\d+)")


def shared_object_problem(data: bytes, target: Target, bundled: Collection[str]) -> str | None:
    """Why the shared object ``data`` cannot load on ``target``, or None when it can;
    ``bundled`` are the file names the wheel carries (libraries it may link)."""
    try:
        elf = ELFFile(io.BytesIO(data))
        machine = elf["e_machine"]
        needed, glibc = _needs(elf)
    except (ELFError, ValueError, KeyError) as exc:
        return f"is not a shared object this tool can read ({exc})"
    if machine != MACHINES.get(target.machine):
        return f"is for {machine}, not {target.machine}"
    if glibc > target.glibc:
        newest, has = "%d.%d" % glibc, "%d.%d" % target.glibc
        return f"needs glibc {newest}, newer than the {has} of {target.name}"
    outside = sorted(lib for lib in needed if lib not in SYSTEM_LIBRARIES and lib not in bundled)
    if outside:
        return f"links {', '.join(outside)}, which Lambda does not have"
    return None


def _needs(elf: ELFFile) -> tuple[set[str], tuple[int, int]]:
    """(the libraries it links, the newest glibc symbol version it needs)."""
    needed: set[str] = set()
    newest = (2, 0)
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            tags = section.iter_tags()
            needed |= {str(t.needed) for t in tags if t.entry.d_tag == "DT_NEEDED"}  # type: ignore[attr-defined]
        elif isinstance(section, GNUVerNeedSection):
            for _, auxiliaries in section.iter_versions():
                for aux in auxiliaries:
                    match = _VERSION.match(aux.name)
                    if match:
                        newest = max(newest, (int(match[1]), int(match[2])))
    return needed, newest
