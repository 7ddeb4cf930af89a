/**
 * A refusal to start because of what the user configured: a bad value, a combination the
 * bridge will not run with (a non-loopback listener without its opt-in), or a file or
 * directory a setting names that cannot be used. Whichever stage finds it throws this one
 * type, and the CLI exits 2 on it: the shipped systemd unit does not restart on 2, since a
 * restart cannot fix a configuration. Anything else that stops the start (a port another
 * process holds) exits 1, and a restart may succeed.
 */
export class ConfigError extends Error {}
