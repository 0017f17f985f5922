# -*- coding: utf-8 -*-
# Copyright (c) proxlb.balancer contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: best_node
short_description: The Proxmox VE node a new guest should be created on
version_added: 0.1.0
author:
  - proxlb.balancer maintainers (!UNKNOWN)
description:
  - Returns the node M(proxlb.balancer.proxlb_best_node) chooses for the same options, computed by the same
    code, for use inline, for example as the O(community.proxmox.proxmox_kvm#module:node) of a new VM.
  - The options mean exactly what they mean for M(proxlb.balancer.proxlb_best_node); see there for the details
    of the fit checks, rules and ranking.
  - Takes no terms, only keyword options.
options:
  memory:
    description: Memory of the new guest, bytes or a binary size like V(8G); see O(proxlb.balancer.proxlb_best_node#module:memory).
    type: raw
    required: true
  cores:
    description: vCPUs of the new guest; see O(proxlb.balancer.proxlb_best_node#module:cores).
    type: int
    required: true
  disk:
    description: Disk size of the new guest; see O(proxlb.balancer.proxlb_best_node#module:disk).
    type: raw
  storage:
    description: Storage for the disk; see O(proxlb.balancer.proxlb_best_node#module:storage).
    type: str
  type:
    description: V(vm) or V(ct); see O(proxlb.balancer.proxlb_best_node#module:type).
    type: str
    choices: [vm, ct]
    default: vm
  tags:
    description: PVE tags of the new guest, whose ProxLB rule tags apply; see O(proxlb.balancer.proxlb_best_node#module:tags).
    type: list
    elements: str
    default: []
  pool:
    description: Pool of the new guest; see O(proxlb.balancer.proxlb_best_node#module:pool).
    type: str
  nodes:
    description: Candidate nodes; see O(proxlb.balancer.proxlb_best_node#module:nodes).
    type: list
    elements: str
  count:
    description:
      - Number of guests to place one after another; see O(proxlb.balancer.proxlb_best_node#module:count).
      - With more than one, the result has one node per guest.
    type: int
    default: 1
  fail_when_no_fit:
    description:
      - Fail when a guest fits on no node, with a message saying why each node was rejected.
      - With V(false), the answer for such a guest is V(null).
    type: bool
    default: true
  snapshot:
    description: Choose offline from a snapshot file; see O(proxlb.balancer.proxlb_best_node#module:snapshot).
    type: path
  api_host:
    env: [{name: PROXMOX_HOST}]
    ini: [{section: proxlb, key: api_host}]
    vars: [{name: proxlb_api_host}]
  api_port:
    env: [{name: PROXMOX_PORT}]
    ini: [{section: proxlb, key: api_port}]
    vars: [{name: proxlb_api_port}]
  api_user:
    env: [{name: PROXMOX_USER}]
    ini: [{section: proxlb, key: api_user}]
    vars: [{name: proxlb_api_user}]
  api_password:
    env: [{name: PROXMOX_PASSWORD}]
    ini: [{section: proxlb, key: api_password}]
    vars: [{name: proxlb_api_password}]
  api_token_id:
    env: [{name: PROXMOX_TOKEN_ID}]
    ini: [{section: proxlb, key: api_token_id}]
    vars: [{name: proxlb_api_token_id}]
  api_token_secret:
    env: [{name: PROXMOX_TOKEN_SECRET}]
    ini: [{section: proxlb, key: api_token_secret}]
    vars: [{name: proxlb_api_token_secret}]
  validate_certs:
    env: [{name: PROXMOX_VALIDATE_CERTS}]
    ini: [{section: proxlb, key: validate_certs}]
    vars: [{name: proxlb_validate_certs}]
  ca_path:
    env: [{name: PROXMOX_CA_PATH}]
    ini: [{section: proxlb, key: ca_path}]
    vars: [{name: proxlb_ca_path}]
  api_timeout:
    env: [{name: PROXMOX_API_TIMEOUT}]
    ini: [{section: proxlb, key: api_timeout}]
    vars: [{name: proxlb_api_timeout}]
extends_documentation_fragment:
  - proxlb.balancer.proxlb
  - proxlb.balancer.balancing
  - proxlb.balancer.balancing.balance
notes:
  - Lookups run on the controller while a template is rendered, not as a task on a host, so C(delegate_to),
    C(module_defaults) and check mode do not apply. Connection options come from keyword options, the
    C(proxlb_api_*) variables, the E(PROXMOX_*) environment variables or the C([proxlb]) section of C(ansible.cfg).
  - A variable defined with this lookup is computed again every time it is used, and each computation reads
    the cluster again, so two uses can give different nodes. Freeze the answer with M(ansible.builtin.set_fact)
    and use that fact, or use M(proxlb.balancer.proxlb_best_node) and C(register).
  - Errors fail the task that renders the template, with the same messages as the module; add C(errors='warn')
    or C(errors='ignore') to the lookup to soften that.
seealso:
  - module: proxlb.balancer.proxlb_best_node
"""

EXAMPLES = r"""
- name: Create a VM on the best node for its size
  community.proxmox.proxmox_kvm:
    node: "{{ lookup('proxlb.balancer.best_node', memory='8G', cores=4) }}"
    name: web-01
    memory: 8192
    cores: 4

- name: Choose once and keep the answer (a lookup in vars is computed again on every use)
  ansible.builtin.set_fact:
    db_node: "{{ lookup('proxlb.balancer.best_node', memory='32GiB', cores=8, disk='200G', storage='local-zfs',
                 tags=['plb_anti_affinity_db'], maintenance_nodes=['pve3']) }}"

- name: Three nodes for three web servers, spread by their anti-affinity tag
  ansible.builtin.set_fact:
    web_nodes: "{{ query('proxlb.balancer.best_node', memory='4G', cores=2, count=3, tags=['plb_anti_affinity_web']) }}"

- name: Connection from variables (as the shipped playbooks use them) instead of PROXMOX_* variables
  vars:
    proxlb_api_host: pve1.example.com
    proxlb_api_user: balancer@pve
    proxlb_api_token_id: proxlb
    proxlb_api_token_secret: "{{ vault_proxlb_token_secret }}"
    proxlb_ca_path: /etc/ssl/pve-root-ca.pem
  ansible.builtin.debug:
    msg: "{{ lookup('proxlb.balancer.best_node', memory=8589934592, cores=4, method='cpu') }}"
"""

RETURN = r"""
_raw:
  description:
    - The chosen node, as a one-element list (so C(lookup) gives the name itself).
    - With O(count) above 1, one node per guest in placement order; C(query) gives them as a list.
    - V(null) for a guest that fits nowhere when O(fail_when_no_fit=false).
  type: list
  elements: str
"""

from ansible.plugins.lookup import LookupBase
from ansible.errors import AnsibleLookupError
from ansible.utils.display import Display

from ansible_collections.proxlb.balancer.plugins.module_utils.ansible_glue import connect
from ansible_collections.proxlb.balancer.plugins.module_utils.collector import load_snapshot
from ansible_collections.proxlb.balancer.plugins.module_utils.best_node_options import OptionAdapter, choose
from ansible_collections.proxlb.balancer.plugins.module_utils.errors import ProxLBError

display = Display()


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        if terms:
            raise AnsibleLookupError("proxlb.balancer.best_node takes no terms; give the guest as keywords,"
                                     " for example lookup('proxlb.balancer.best_node', memory='8G', cores=4)")
        # Variables reach lookups untemplated; render those that feed options (proxlb_api_host: "{{ ... }}").
        names = {source["name"] for definition in self.option_definitions.values() for source in definition.get("vars") or []}
        var_options = {name: self._templar.template(value) for name, value in (variables or {}).items() if name in names}
        self.set_options(var_options=var_options, direct=kwargs)
        # The collection's errors become lookup errors here, with the module's messages.
        try:
            result, failed = choose(OptionAdapter.from_plugin(self, display), connect, load_snapshot)
        except ProxLBError as err:
            raise AnsibleLookupError(str(err))
        if failed:
            raise AnsibleLookupError(result["msg"])
        return result["nodes"]
