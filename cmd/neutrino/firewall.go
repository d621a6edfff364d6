package main

import "github.com/spf13/cobra"

// Firewall as a service (Neutron FWaaS v2): `neutrino firewall rule|policy|
// group ...`, the generic resource commands under one parent, plus the
// policy's insert-rule and remove-rule actions.

var firewallRuleFlags = []attrFlag{
	{name: "description", key: "description", kind: kindString, usage: "description"},
	{name: "protocol", key: "protocol", kind: kindString, usage: "tcp, udp, icmp or any (default)"},
	{name: "ip-version", key: "ip_version", kind: kindInt, usage: "4 (default) or 6"},
	{name: "source-ip-address", key: "source_ip_address", kind: kindString, usage: "source address or CIDR (default any)"},
	{name: "destination-ip-address", key: "destination_ip_address", kind: kindString, usage: "destination address or CIDR (default any)"},
	{name: "source-port", key: "source_port", kind: kindString, usage: "source port or range N:M (needs a protocol)"},
	{name: "destination-port", key: "destination_port", kind: kindString, usage: "destination port or range N:M (needs a protocol)"},
	{name: "action", key: "action", kind: kindString, usage: "allow, deny (default) or reject"},
	{name: "enable", key: "enabled", kind: kindSwitch, value: true, usage: "the rule is enforced (default)"},
	{name: "disable", key: "enabled", kind: kindSwitch, value: false, usage: "the rule is skipped"},
	{name: "share", key: "shared", kind: kindSwitch, value: true, usage: "visible to every project (admin only)"},
	{name: "no-share", key: "shared", kind: kindSwitch, value: false, usage: "visible to its project only"},
}

func withName(update bool, flags []attrFlag) []attrFlag {
	if update {
		return append([]attrFlag{{name: "name", key: "name", kind: kindString, usage: "new name"}}, flags...)
	}
	return append([]attrFlag{{name: "project-id", key: "project_id", kind: kindString, usage: "owning project (admin only)"}}, flags...)
}

var firewallRuleResource = &resource{
	collection: "fwaas/firewall_rules",
	singular:   "firewall_rule",
	command:    "rule",
	nameArg:    true,
	tags:       true,
	listColumns: []column{{"ID", "id"}, {"Name", "name"}, {"Enabled", "enabled"}, {"Protocol", "protocol"},
		{"Destination", "destination_ip_address"}, {"Port", "destination_port"}, {"Action", "action"}},
	showFields: []string{"id", "name", "description", "project_id", "enabled", "action", "protocol", "ip_version",
		"source_ip_address", "source_port", "destination_ip_address", "destination_port", "shared", "firewall_policy_id"},
	createFlags: withName(false, firewallRuleFlags),
	updateFlags: withName(true, firewallRuleFlags),
	listFlags:   []attrFlag{{name: "name", key: "name", kind: kindString, usage: "only rules with this name"}},
}

var firewallPolicyFlags = []attrFlag{
	{name: "description", key: "description", kind: kindString, usage: "description"},
	{name: "firewall-rule", key: "firewall_rules", kind: kindStrings, usage: "a rule id, in policy order (repeat the flag)"},
	{name: "audited", key: "audited", kind: kindSwitch, value: true, usage: "mark the policy audited"},
	{name: "share", key: "shared", kind: kindSwitch, value: true, usage: "visible to every project (admin only)"},
	{name: "no-share", key: "shared", kind: kindSwitch, value: false, usage: "visible to its project only"},
}

var firewallPolicyResource = &resource{
	collection:  "fwaas/firewall_policies",
	singular:    "firewall_policy",
	command:     "policy",
	nameArg:     true,
	tags:        true,
	listColumns: []column{{"ID", "id"}, {"Name", "name"}, {"Firewall Rules", "firewall_rules"}, {"Audited", "audited"}},
	showFields:  []string{"id", "name", "description", "project_id", "firewall_rules", "audited", "shared"},
	createFlags: withName(false, firewallPolicyFlags),
	updateFlags: withName(true, firewallPolicyFlags),
	listFlags:   []attrFlag{{name: "name", key: "name", kind: kindString, usage: "only policies with this name"}},
	extra:       firewallPolicyRuleCmds,
}

var firewallGroupFlags = []attrFlag{
	{name: "description", key: "description", kind: kindString, usage: "description"},
	{name: "ingress-firewall-policy", key: "ingress_firewall_policy_id", kind: kindRef, ref: firewallPolicyResource, usage: "policy for traffic into the ports"},
	{name: "egress-firewall-policy", key: "egress_firewall_policy_id", kind: kindRef, ref: firewallPolicyResource, usage: "policy for traffic out of the ports"},
	{name: "no-ingress-firewall-policy", key: "ingress_firewall_policy_id", kind: kindClear, usage: "no ingress policy"},
	{name: "no-egress-firewall-policy", key: "egress_firewall_policy_id", kind: kindClear, usage: "no egress policy"},
	{name: "port", key: "ports", kind: kindStrings, usage: "a router interface or VM port id (repeat the flag; replaces the list)"},
	{name: "enable", key: "admin_state_up", kind: kindSwitch, value: true, usage: "administratively up (default)"},
	{name: "disable", key: "admin_state_up", kind: kindSwitch, value: false, usage: "administratively down"},
	{name: "share", key: "shared", kind: kindSwitch, value: true, usage: "visible to every project (admin only)"},
	{name: "no-share", key: "shared", kind: kindSwitch, value: false, usage: "visible to its project only"},
}

var firewallGroupResource = &resource{
	collection: "fwaas/firewall_groups",
	singular:   "firewall_group",
	command:    "group",
	nameArg:    true,
	tags:       true,
	listColumns: []column{{"ID", "id"}, {"Name", "name"}, {"Ingress Policy ID", "ingress_firewall_policy_id"},
		{"Egress Policy ID", "egress_firewall_policy_id"}, {"Status", "status"}},
	longColumns: []column{{"Ports", "ports"}, {"State", "admin_state_up"}},
	showFields: []string{"id", "name", "description", "project_id", "status", "admin_state_up", "ingress_firewall_policy_id",
		"egress_firewall_policy_id", "ports", "shared"},
	createFlags: withName(false, firewallGroupFlags),
	updateFlags: withName(true, firewallGroupFlags),
	listFlags:   []attrFlag{{name: "name", key: "name", kind: kindString, usage: "only groups with this name"}},
	formats:     map[string]func(any) string{"admin_state_up": upDown},
}

// firewallPolicyRuleCmds are `policy insert-rule` and `policy remove-rule`.
func firewallPolicyRuleCmds(a *app, r *resource) []*cobra.Command {
	action := func(name, short string, insert bool) *cobra.Command {
		cmd := &cobra.Command{Use: name + " POLICY RULE", Short: short, Args: cobra.ExactArgs(2), ValidArgsFunction: a.completeNames(r)}
		var before, after *string
		if insert {
			before = cmd.Flags().String("before", "", "insert before this rule (id or name)")
			after = cmd.Flags().String("after", "", "insert after this rule (id or name)")
			cmd.MarkFlagsMutuallyExclusive("before", "after")
			markNoEnv(cmd.Flags(), "before", "after")
		}
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.client()
			if err != nil {
				return err
			}
			policy, err := c.Find(ctx, r.collection, r.singular, args[0])
			if err != nil {
				return err
			}
			ruleID := func(ref string) (any, error) {
				obj, err := c.Find(ctx, firewallRuleResource.collection, firewallRuleResource.singular, ref)
				if err != nil {
					return nil, err
				}
				return obj["id"], nil
			}
			body := map[string]any{}
			if body["firewall_rule_id"], err = ruleID(args[1]); err != nil {
				return err
			}
			if insert {
				for key, ref := range map[string]string{"insert_before": *before, "insert_after": *after} {
					if ref != "" {
						if body[key], err = ruleID(ref); err != nil {
							return err
						}
					}
				}
			}
			var out map[string]any
			id, _ := policy["id"].(string)
			if err := c.Do(ctx, "PUT", "/v2.0/"+r.collection+"/"+id+"/"+map[bool]string{true: "insert_rule", false: "remove_rule"}[insert], nil, body, &out); err != nil {
				return err
			}
			return a.printObject(r, out)
		}
		return cmd
	}
	return []*cobra.Command{
		action("insert-rule", "Insert a rule into a policy (at the top, or --before/--after a rule)", true),
		action("remove-rule", "Remove a rule from a policy", false),
	}
}

// firewallResources are the commands under `neutrino firewall`, in help order.
var firewallResources = []*resource{firewallRuleResource, firewallPolicyResource, firewallGroupResource}

func newFirewallCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "firewall", Short: "Manage firewall as a service (FWaaS v2: rules, policies, groups on router and VM ports)"}
	for _, r := range firewallResources {
		cmd.AddCommand(newResourceCmd(a, r))
	}
	return cmd
}
