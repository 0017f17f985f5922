"""Write tests/integration/integration_config.yml from its template and the PVESIM_* environment.

usage: write_integration_config.py COLLECTION_ROOT
"""
import json
import os
import string
import sys


def main(argv):
    root = argv[1] if len(argv) > 1 else "."
    integration = os.path.join(root, "tests", "integration")
    with open(os.path.join(integration, "integration_config.yml.template")) as f:
        template = string.Template(f.read())
    names = ("PVESIM_HOST", "PVESIM_PORT", "PVESIM_URL", "PVESIM_CA_PATH")
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        sys.exit("missing environment: %s (run under scripts/with_pvesim.sh)" % ", ".join(missing))
    # JSON strings are valid YAML scalars, which keeps odd characters in paths safe.
    values = {name: json.dumps(os.environ[name]) for name in names}
    values["PVESIM_PORT"] = str(int(os.environ["PVESIM_PORT"]))
    with open(os.path.join(integration, "integration_config.yml"), "w") as f:
        f.write(template.substitute(values))


if __name__ == "__main__":
    main(sys.argv)
