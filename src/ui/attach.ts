import type { Bridge } from '../bridge.js';
import { describeTargets, type OtelSettings } from '../config/otel-env.js';
import { notes } from '../policy/policy-command.js';
import type { PolicyService } from '../policy/policy-service.js';
import { LiveView, type PolicyPane } from './live-view.js';

export { wantsView } from './wants-view.js';

/**
 * Starts the live view on the bridge's translated calls: on the web view's model when the web view
 * runs (one model for both views), else on its own, tapped here. q / Ctrl-C send SIGINT, the normal stop path.
 */
export function startView(
  bridge: Bridge,
  otel: OtelSettings,
  info: { version: string; listen: string[]; admin?: string; extra?: () => string[] },
  terminal: { out: NodeJS.WriteStream; input?: NodeJS.ReadStream } = { out: process.stdout, input: process.stdin },
): LiveView {
  const view = new LiveView({
    version: info.version,
    listen: info.listen,
    ...(info.admin ? { admin: info.admin } : {}),
    target: describeTargets(otel),
    stats: () => bridge.snapshot(),
    out: terminal.out,
    ...(terminal.input ? { input: terminal.input } : {}),
    onQuit: () => process.kill(process.pid, 'SIGINT'),
    ...(info.extra ? { extra: info.extra } : {}),
    ...(bridge.policy ? { policy: policyPane(bridge.policy) } : {}),
    ...(bridge.viewModel ? { model: bridge.viewModel } : {}),
  });
  if (!bridge.viewModel) bridge.tapCalls((c, t) => view.onCall(c, t));
  view.start();
  return view;
}

/** The policy pane over the bridge's policy service: the document, then what it leaves out. */
function policyPane(policy: PolicyService): PolicyPane {
  return {
    labels: () => policy.labels(),
    lines: async (label) => {
      const r = await policy.one(label);
      if (!r) return ['(not observed)'];
      return [...JSON.stringify(r.policy, null, 2).split('\n'), '', ...notes(r, false)];
    },
  };
}
