# Nomad client configuration for nodes that run Podium's sandboxes.
# Install as /etc/nomad.d/podium-client.hcl next to your agent's own configuration
# (data_dir, server addresses, ACLs), and copy podium-isolated.conflist into
# cni_config_dir. Meant for Nomad 2.0 on Debian 12 (what Podium was run on, v2.0.6);
# docs/sandbox.md explains each choice.

client {
  enabled = true

  # Debian's containernetworking-plugins install here, not in /opt/cni/bin.
  cni_path       = "/usr/lib/cni"
  cni_config_dir = "/etc/cni/net.d" # holds podium-isolated.conflist (loopback only)

  # What the exec driver links into every task's chroot. The default links the
  # host's whole /etc and /usr (about 9 s per task, and /etc/shadow inside); this
  # list is what Podium's tasks need: the interpreter, the limit wrapper, the shell
  # and uv for build jobs, shared libraries, TLS roots, name resolution.
  # No setuid binary may be listed: a task runs with NoNewPrivs 0, so a setuid-root
  # program would give it uid 0. Check with: find <path> -perm -4000
  chroot_env {
    "/usr/bin/python3.11"       = "/usr/bin/python3.11"
    "/usr/bin/python3"          = "/usr/bin/python3"
    "/usr/bin/prlimit"          = "/usr/bin/prlimit"
    "/usr/bin/timeout"          = "/usr/bin/timeout"
    "/usr/bin/dash"             = "/bin/sh"
    "/usr/local/bin/uv"         = "/usr/local/bin/uv"
    "/lib64"                    = "/lib64"
    "/lib/x86_64-linux-gnu"     = "/lib/x86_64-linux-gnu"
    "/usr/lib/python3.11"       = "/usr/lib/python3.11"
    "/etc/ssl"                  = "/etc/ssl"
    "/etc/ld.so.cache"          = "/etc/ld.so.cache"
    "/etc/passwd"               = "/etc/passwd"
    "/etc/group"                = "/etc/group"
    "/etc/hosts"                = "/etc/hosts"
    "/etc/resolv.conf"          = "/etc/resolv.conf"
    "/etc/nsswitch.conf"        = "/etc/nsswitch.conf"
  }
}

plugin "exec" {
  config {
    # Every job Podium renders drops all capabilities ("cap_drop": ["all"]);
    # this keeps any other job on these nodes from asking for more than kill.
    allow_caps       = ["kill"]
    default_pid_mode = "private"
    default_ipc_mode = "private"
  }
}

# GPU nodes only: the NVIDIA device plugin (nomad-device-nvidia in plugin_dir).
# plugin "nomad-device-nvidia" {
#   config {
#     enabled = true
#   }
# }
