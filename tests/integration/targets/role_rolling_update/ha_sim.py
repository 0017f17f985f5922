"""Stand-in for 'ha-manager crm-command node-maintenance enable|disable NODE' on the simulator.

usage: ha_sim.py SIMULATOR_URL CA_PATH enable|disable NODE
"""
import json
import ssl
import sys
import urllib.request


def main(argv):
    url, ca_path, action, node = argv[1:5]
    if action not in ("enable", "disable"):
        sys.exit("unknown action %s" % action)
    request = urllib.request.Request("%s/_sim/nodes/%s/ha-maintenance" % (url, node), method="POST",
                                     data=json.dumps({"enable": action == "enable"}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, context=ssl.create_default_context(cafile=ca_path), timeout=10) as answer:
        answer.read()


if __name__ == "__main__":
    main(sys.argv)
