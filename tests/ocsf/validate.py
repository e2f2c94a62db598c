"""Validates OCSF events (JSON lines) against an OCSF schema repository checkout.

    python validate.py SCHEMA_REPO EVENTS.jsonl...

The schema is compiled from the repository's own files by ocsf-lib (the OCSF community's
Python compiler: dictionary, objects with `extends`, `$include`, profiles), turned into one
JSON Schema per class by ocsf-json-schema (required attributes, no undefined attributes,
enums, types, `at_least_one`/`just_one` constraints) and checked with jsonschema. Two rules
JSON Schema cannot say are checked from the same compiled schema, for every attribute alike:
a caption next to an enum id (`activity_name`, `type`, `severity`, `status`, …: the
attribute's `sibling`) must be the id's caption — for 99 (Other) one that no other id has —
and `type_uid` must be `class_uid * 100 + activity_id`.

Prints the number of valid events per class as JSON on stdout; every invalid event and
why on stderr; exits 1 if any event is invalid.
"""

import json
import sys
from collections import Counter

from jsonschema import Draft202012Validator
from ocsf.compile.compiler import Compilation
from ocsf.compile.options import CompilationOptions
from ocsf.repository import read_repo
from ocsf.schema import to_json
from ocsf_json_schema import OcsfJsonSchemaEmbedded

# The caption of "Other" (99) is the producer's own word, and "Unknown" (0) may carry one.
FREE_CAPTION_IDS = {"99"}


def drop_nulls(v):
    """ocsf-lib writes absent metaschema fields as null; the server export omits them."""
    if isinstance(v, dict):
        return {k: drop_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [drop_nulls(x) for x in v]
    return v


def compile_schema(repo_path):
    """The repository compiled as the OCSF server exports it (`/export/schema`)."""
    schema = drop_nulls(json.loads(to_json(Compilation(read_repo(repo_path), CompilationOptions()).build())))
    # ocsf-lib 0.10.4 leaves an object-typed attribute's type as the object's name (its
    # object-type step tests `type[:-2]` for "_t"); the export form, which
    # ocsf-json-schema reads, is `object_t` with `object_type`.
    objects = schema["objects"]
    for defn in list(objects.values()) + list(schema["classes"].values()):
        for attr in defn.get("attributes", {}).values():
            if attr.get("type") in objects:
                attr["object_type"] = attr["type"]
                attr["type"] = "object_t"
    return schema


def caption_errors(schema, attrs, value, path):
    """Captions beside enum ids, recursively through objects, as the compiled schema says."""
    errors = []
    if not isinstance(value, dict):
        return errors
    for name, attr in attrs.items():
        if name not in value:
            continue
        sibling = attr.get("sibling")
        enum = attr.get("enum")
        if enum and sibling and sibling in value:
            key = str(value[name])
            want = enum.get(key, {}).get("caption")
            if key not in FREE_CAPTION_IDS and want is not None and value[sibling] != want:
                errors.append(f"{path}{sibling}: {value[sibling]!r} is not the caption of {name} {key} ({want!r})")
            named = [k for k, v in enum.items() if v.get("caption") == value[sibling] and k != key]
            if key in FREE_CAPTION_IDS and named:
                errors.append(f"{path}{name}: {key} (Other) for {value[sibling]!r}, which is {name} {named[0]}")
        if attr.get("type") == "object_t":
            inner = schema["objects"].get(attr["object_type"], {}).get("attributes", {})
            items = value[name] if isinstance(value[name], list) else [value[name]]
            for i, item in enumerate(items):
                at = f"{path}{name}[{i}]." if isinstance(value[name], list) else f"{path}{name}."
                errors += caption_errors(schema, inner, item, at)
    return errors


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    schema = compile_schema(sys.argv[1])
    json_schemas = OcsfJsonSchemaEmbedded(schema)
    classes = {c["uid"]: c for c in schema["classes"].values()}
    validators = {}
    counts, bad = Counter(), 0
    for events in sys.argv[2:]:
        with open(events, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                event = json.loads(line)
                where = f"{events}:{n}"
                uid = event.get("class_uid")
                if uid not in classes:
                    print(f"{where}: class_uid {uid!r} is not a class of OCSF {schema['version']}", file=sys.stderr)
                    bad += 1
                    continue
                cls = classes[uid]
                profiles = tuple(sorted(event.get("metadata", {}).get("profiles", [])))
                if (uid, profiles) not in validators:
                    js = json_schemas.get_class_schema(cls["name"], list(profiles))
                    Draft202012Validator.check_schema(js)
                    validators[(uid, profiles)] = Draft202012Validator(js)
                errors = [
                    f"{'/'.join(map(str, e.absolute_path)) or '(event)'}: {e.message}"
                    for e in validators[(uid, profiles)].iter_errors(event)
                ]
                errors += caption_errors(schema, cls["attributes"], event, "")
                if event.get("type_uid") != uid * 100 + event.get("activity_id", -1):
                    errors.append(f"type_uid {event.get('type_uid')} is not class_uid * 100 + activity_id")
                if errors:
                    bad += 1
                    print(f"{where}: {cls['caption']} ({uid}) is invalid:", file=sys.stderr)
                    for e in errors:
                        print(f"  - {e}", file=sys.stderr)
                    print(f"  event: {line.strip()[:2000]}", file=sys.stderr)
                else:
                    counts[f"{uid} {cls['caption']}"] += 1
    print(json.dumps(dict(sorted(counts.items())), indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
