# -*- test-case-name: tests.test_procfs -*-
"""/proc/meminfo (proc(5)): every field, in bytes where the kernel counts in kB."""

from __future__ import annotations

from dataclasses import dataclass

from twistedspy.procfs import PROC, read_text


@dataclass(frozen=True, slots=True)
class MeminfoField:
    #: the kernel's name, as written: `MemTotal`, `Active(anon)`, `HugePages_Total`
    name: str
    #: in bytes when `in_bytes`, else the kernel's plain count (`HugePages_Total`)
    value: int
    #: whether the kernel gave it in kB (and `value` was scaled to bytes)
    in_bytes: bool


@dataclass(frozen=True, slots=True)
class Meminfo:
    """The fields in the kernel's order; newer kernels add fields, older ones lack some."""

    fields: tuple[MeminfoField, ...]

    def values(self) -> dict[str, int]:
        """Each field's value by name."""
        return {f.name: f.value for f in self.fields}


def parse_meminfo(text: str) -> Meminfo:
    """`Key: value kB` lines, kB scaled to bytes; a line without a unit kept as is."""
    fields: list[MeminfoField] = []
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        words = rest.split()
        if not words or not words[0].isdigit():
            continue
        in_bytes = words[1:] == ["kB"]
        value = int(words[0]) * 1024 if in_bytes else int(words[0])
        fields.append(MeminfoField(key.strip(), value, in_bytes))
    return Meminfo(tuple(fields))


def read_meminfo(proc: str = PROC) -> Meminfo:
    return parse_meminfo(read_text(f"{proc}/meminfo"))
