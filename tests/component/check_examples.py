#!/usr/bin/python3
"""Holds pillionctl validate to the examples: every valid one passes, every invalid one fails
with exactly the errors its `# expect:` header lines name (field path and message substring)."""
import pathlib
import subprocess
import sys


def expectations(path):
    exp, schema = [], None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith("#"):
            if line.strip() in ("", "---"):
                continue
            break
        body = line[1:].strip()
        if body.startswith("expect:"):
            field, _, msg = body[len("expect:"):].strip().partition(": ")
            exp.append((field.strip(), msg.strip()))
        elif body.startswith("schema:"):
            schema = body[len("schema:"):].strip()
    return exp, schema


def run(ctl, path):
    p = subprocess.run([ctl, "validate", "-q", "-f", str(path)], capture_output=True, text=True, timeout=60)
    return p.returncode, [l for l in p.stdout.splitlines() if l.strip()], p.stderr


def main():
    ctl, examples = sys.argv[1], pathlib.Path(sys.argv[2])
    failures = 0
    valid = sorted(p for p in (examples / "valid").iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    invalid = sorted(p for p in (examples / "invalid").iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    if not valid or len(invalid) < 30:
        print(f"too few examples: {len(valid)} valid, {len(invalid)} invalid (need 30)")
        return 1
    for path in valid:
        rc, out, err = run(ctl, path)
        if rc != 0 or out:
            failures += 1
            print(f"FAIL {path}: exit {rc}, want 0\n  " + "\n  ".join(out + err.splitlines()))
    for path in invalid:
        exp, _ = expectations(path)
        if path.suffix == ".json":
            side = path.with_name(path.name + ".expect")
            if side.exists():
                exp, _ = expectations(side)
        if not exp:
            failures += 1
            print(f"FAIL {path}: no '# expect:' line")
            continue
        rc, out, err = run(ctl, path)
        problems = []
        if rc != 1:
            problems.append(f"exit {rc}, want 1")
        # Each output line is PATH:DOC: <Kind ns/name: | yaml: | json:> field.path: message
        unmatched = list(out)
        for field, msg in exp:
            hit = next((l for l in unmatched if f" {field}: " in f" {l}" and msg in l.split(f"{field}: ", 1)[-1]), None)
            if hit is None:
                problems.append(f"missing error {field}: {msg}")
            else:
                unmatched.remove(hit)
        for l in unmatched:
            problems.append(f"unexpected error: {l}")
        if problems:
            failures += 1
            print(f"FAIL {path}:\n  " + "\n  ".join(problems + ["got: " + l for l in out]))
    print(f"examples: {len(valid)} valid files, {len(invalid)} invalid files, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
