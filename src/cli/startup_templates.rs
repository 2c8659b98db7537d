//! The boot configuration `pmr startup` writes, per init system: pure text from a few values
//! (PM2's templates, with pmr's daemon in the foreground where the init system can supervise
//! it). Tested here; `startup.rs` does the I/O.

/// What every template is filled with.
#[derive(Debug, Clone)]
pub struct Vars {
    /// `pmr` or `pm2` (the personality: names and the home variable).
    pub tag: &'static str,
    /// The binary, as the user ran it (a `pm2` symlink keeps PM2's names).
    pub exe: String,
    pub user: String,
    /// The daemon's home (`<hp>/.pmr`).
    pub home: String,
    /// `PMR_HOME` or `PM2_HOME`.
    pub home_var: &'static str,
    /// The PATH apps get: the caller's, with the directory of its `node`.
    pub path: String,
    /// The `node` that PATH finds, for the note on upgrades.
    pub node: Option<String>,
    pub service: String,
    /// systemd: start once the network is online (`--wait-ip`), not merely configured.
    pub wait_ip: bool,
}

fn node_note(v: &Vars, comment: &str) -> String {
    let node = match &v.node {
        Some(n) => format!("its node is {n}"),
        None => "no node on it".to_string(),
    };
    format!(
        "{comment} PATH is the one `{tag} startup` ran with ({node}). After a Node.js upgrade or an\n\
         {comment} nvm/fnm switch, run `{tag} unstartup` then `{tag} startup` again to refresh it.\n",
        tag = v.tag
    )
}

/// systemd: `Type=notify`, the daemon in the foreground (`daemon --resurrect`) says READY=1
/// once every saved app is started. `user_unit`: a `systemctl --user` unit (no `User=`).
pub fn systemd(v: &Vars, user_unit: bool) -> String {
    let user_line = if user_unit {
        String::new()
    } else {
        format!("User={}\n", v.user)
    };
    let network = if v.wait_ip {
        "Wants=network-online.target\nAfter=network-online.target\n"
    } else {
        "After=network.target\n"
    };
    let wanted = if user_unit {
        "default.target"
    } else {
        "multi-user.target"
    };
    format!(
        "[Unit]\n\
         Description={tag} process manager\n\
         {network}\
         \n\
         [Service]\n\
         Type=notify\n\
         NotifyAccess=main\n\
         {user_line}\
         LimitNOFILE=infinity\n\
         LimitNPROC=infinity\n\
         LimitCORE=infinity\n\
         {note}\
         Environment=PATH={path}\n\
         Environment={home_var}={home}\n\
         Restart=on-failure\n\
         ExecStart={exe} daemon --resurrect\n\
         ExecReload={exe} reload all\n\
         ExecStop={exe} kill\n\
         \n\
         [Install]\n\
         WantedBy={wanted}\n",
        tag = v.tag,
        note = node_note(v, "#"),
        path = v.path,
        home_var = v.home_var,
        home = v.home,
        exe = v.exe,
    )
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// launchd: a LaunchAgent that runs the daemon in the foreground and keeps it alive.
pub fn launchd(v: &Vars) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!--
{note}-->
<plist version="1.0">
  <dict>
    <key>Label</key>
    <string>{service}</string>
    <key>UserName</key>
    <string>{user}</string>
    <key>ProgramArguments</key>
    <array>
      <string>{exe}</string>
      <string>daemon</string>
      <string>--resurrect</string>
    </array>
    <key>RunAtLoad</key>
    <true/>
    <key>KeepAlive</key>
    <true/>
    <key>EnvironmentVariables</key>
    <dict>
      <key>PATH</key>
      <string>{path}</string>
      <key>{home_var}</key>
      <string>{home}</string>
    </dict>
  </dict>
</plist>
"#,
        note = xml(&node_note(v, "  ")),
        service = xml(&v.service),
        user = xml(&v.user),
        exe = xml(&v.exe),
        path = xml(&v.path),
        home_var = v.home_var,
        home = xml(&v.home),
    )
}

/// Single-quoted for sh.
fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// OpenRC: the daemon in the background under start-stop-daemon, stopped with `kill`.
pub fn openrc(v: &Vars) -> String {
    format!(
        "#!/sbin/openrc-run\n\
         # Written by `{tag} startup openrc`.\n\
         {note}\
         description=\"{tag} process manager\"\n\
         extra_started_commands=\"reload\"\n\
         \n\
         command={exe}\n\
         command_args=\"daemon --resurrect\"\n\
         command_user={user}\n\
         command_background=true\n\
         pidfile=/run/{service}.pid\n\
         export PATH={path}\n\
         export {home_var}={home}\n\
         \n\
         depend() {{\n\
         \tneed net localmount\n\
         \tafter bootmisc\n\
         }}\n\
         \n\
         stop() {{\n\
         \tebegin \"Stopping {tag}\"\n\
         \tsu -s /bin/sh {user} -c \"{exe} kill\"\n\
         \teend $?\n\
         }}\n\
         \n\
         reload() {{\n\
         \tebegin \"Reloading {tag} apps\"\n\
         \tsu -s /bin/sh {user} -c \"{exe} reload all\"\n\
         \teend $?\n\
         }}\n",
        tag = v.tag,
        note = node_note(v, "#"),
        exe = sq(&v.exe),
        user = sq(&v.user),
        service = v.service,
        path = sq(&v.path),
        home_var = v.home_var,
        home = sq(&v.home),
    )
}

/// A System V init script (PM2 calls it `upstart`: Debian's `update-rc.d`).
pub fn sysv(v: &Vars) -> String {
    format!(
        "#!/bin/sh\n\
         ### BEGIN INIT INFO\n\
         # Provides:          {service}\n\
         # Required-Start:    $local_fs $remote_fs $network\n\
         # Required-Stop:     $local_fs $remote_fs $network\n\
         # Default-Start:     2 3 4 5\n\
         # Default-Stop:      0 1 6\n\
         # Short-Description: {tag} process manager\n\
         ### END INIT INFO\n\
         # Written by `{tag} startup upstart`.\n\
         {note}\
         export PATH={path}\n\
         export {home_var}={home}\n\
         \n\
         run() {{\n\
         \tsu -s /bin/sh {user} -c \"{exe} $*\"\n\
         }}\n\
         \n\
         case \"$1\" in\n\
         \tstart) run resurrect ;;\n\
         \tstop) run kill ;;\n\
         \trestart) run kill; run resurrect ;;\n\
         \treload|force-reload) run reload all ;;\n\
         \tstatus) run ping ;;\n\
         \t*) echo \"Usage: $0 {{start|stop|restart|reload|status}}\"; exit 1 ;;\n\
         esac\n",
        tag = v.tag,
        note = node_note(v, "#"),
        service = v.service,
        path = sq(&v.path),
        home_var = v.home_var,
        home = sq(&v.home),
        user = sq(&v.user),
        exe = v.exe,
    )
}

/// FreeBSD rc.d.
pub fn rcd(v: &Vars) -> String {
    format!(
        "#!/bin/sh\n\
         \n\
         # PROVIDE: {service}\n\
         # REQUIRE: LOGIN\n\
         # KEYWORD: shutdown\n\
         # Written by `{tag} startup rcd`.\n\
         {note}\
         \n\
         . /etc/rc.subr\n\
         \n\
         name=\"{service}\"\n\
         rcvar=\"{service}_enable\"\n\
         start_cmd=\"pmr_run resurrect\"\n\
         stop_cmd=\"pmr_run kill\"\n\
         reload_cmd=\"pmr_run reload all\"\n\
         status_cmd=\"pmr_run ping\"\n\
         extra_commands=\"reload status\"\n\
         \n\
         pmr_run()\n\
         {{\n\
         \tenv PATH={path} {home_var}={home} su -m {user} -c \"{exe} $*\"\n\
         }}\n\
         \n\
         load_rc_config $name\n\
         run_rc_command \"$1\"\n",
        tag = v.tag,
        note = node_note(v, "#"),
        service = v.service,
        path = sq(&v.path),
        home_var = v.home_var,
        home = sq(&v.home),
        user = sq(&v.user),
        exe = v.exe,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            tag: "pmr",
            exe: "/usr/local/bin/pmr".into(),
            user: "app".into(),
            home: "/home/app/.pmr".into(),
            home_var: "PMR_HOME",
            path: "/opt/node/bin:/usr/bin".into(),
            node: Some("/opt/node/bin/node".into()),
            service: "pmr-app".into(),
            wait_ip: false,
        }
    }

    #[test]
    fn the_systemd_unit_is_type_notify_with_the_daemon_in_the_foreground() {
        let u = systemd(&vars(), false);
        for line in [
            "Type=notify",
            "User=app",
            "Environment=PATH=/opt/node/bin:/usr/bin",
            "Environment=PMR_HOME=/home/app/.pmr",
            "ExecStart=/usr/local/bin/pmr daemon --resurrect",
            "ExecReload=/usr/local/bin/pmr reload all",
            "ExecStop=/usr/local/bin/pmr kill",
            "WantedBy=multi-user.target",
        ] {
            assert!(u.lines().any(|l| l == line), "{line} missing in\n{u}");
        }
        assert!(u.contains("/opt/node/bin/node"), "names the node: {u}");
        assert!(u.contains("pmr unstartup` then `pmr startup"), "{u}");
        let user = systemd(&vars(), true);
        assert!(!user.contains("User="), "{user}");
        assert!(user.contains("WantedBy=default.target"), "{user}");
        assert!(u.contains("After=network.target\n"), "{u}");
        let online = systemd(
            &Vars {
                wait_ip: true,
                ..vars()
            },
            false,
        );
        assert!(online.contains("Wants=network-online.target\nAfter=network-online.target\n"));
    }

    #[test]
    fn scripts_quote_what_the_shell_reads() {
        let mut v = vars();
        v.home = "/home/o'neil/.pmr".into();
        let s = sysv(&v);
        assert!(s.contains(r"export PMR_HOME='/home/o'\''neil/.pmr'"), "{s}");
        assert!(openrc(&v).contains("command_args=\"daemon --resurrect\""));
        assert!(rcd(&v).contains("rcvar=\"pmr-app_enable\""));
        let mut v = vars();
        v.path = "/a&b".into();
        assert!(launchd(&v).contains("<string>/a&amp;b</string>"));
    }
}
