package main

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"neutrino/northbound/client"
)

// resource describes one Neutron resource to the generic commands
// (create, list, show, update, delete). Adding a resource is a descriptor
// and a line in resources.
type resource struct {
	collection string // "networks": the URL path and the list envelope
	singular   string // "network": the command name and the object envelope
	nameArg    bool   // create takes NAME as its one argument
	tags       bool   // the resource has Neutron tags: --tag on create, list and update
	readOnly   bool   // only list and show (e.g. chassis, which come from gossip)
	noUpdate   bool   // no update command (security group rules are immutable)
	command    string // the command name when it is not singular ("floating-ip")

	listColumns []column // list's columns
	longColumns []column // more columns for list --long
	showFields  []string // show's first rows, in this order; other attributes follow sorted

	createFlags []attrFlag
	updateFlags []attrFlag
	listFlags   []attrFlag // filters

	// formats show attribute values as the openstack CLI does (UP/DOWN).
	formats map[string]func(any) string

	// createDefaults fills what create sends when its flag was not given
	// and the server requires it (a subnet's ip_version, from the CIDR).
	createDefaults func(body map[string]any)

	// extra returns resource-specific subcommands (router add interface).
	extra func(a *app, r *resource) []*cobra.Command
}

// resources are the resource commands of the binary, in help order.
var resources = []*resource{
	networkResource,
	subnetResource,
	portResource,
	securityGroupResource,
	securityGroupRuleResource,
	routerResource,
	floatingIPResource,
	chassisResource,
}

// column is one list column.
type column struct {
	header string
	key    string
}

// flagKind is how a flag's value becomes an attribute.
type flagKind int

const (
	kindString  flagKind = iota // the text
	kindInt                     // an integer
	kindSwitch                  // a bool flag: given, the attribute gets value
	kindStrings                 // a repeatable flag: a list
	kindRef                     // the id or name of a ref resource, sent as its id
	kindClear                   // a bool flag: given, the attribute is sent as null
	kindList                    // a list, comma-separated and/or repeated ("a,b")
)

// attrFlag maps one flag to one attribute of the request body (or, for
// list, one query filter).
type attrFlag struct {
	name  string
	key   string
	kind  flagKind
	usage string
	value bool      // kindSwitch: the value the attribute gets
	ref   *resource // kindRef: what the name or id names
	// conv turns each value of a kindStrings flag into what is sent
	// ("start=A,end=B" into an allocation pool).
	conv func(string) (any, error)
}

// defineAttrFlags adds the flags to cmd. Switch flags that set the same
// attribute (--shared, --no-shared) exclude each other.
func defineAttrFlags(cmd *cobra.Command, flags []attrFlag) {
	fs := cmd.Flags()
	switches := map[string][]string{}
	var order []string
	for _, f := range flags {
		switch f.kind {
		case kindString, kindRef:
			fs.String(f.name, "", f.usage)
		case kindInt:
			fs.Int(f.name, 0, f.usage)
		case kindClear:
			fs.Bool(f.name, false, f.usage)
		case kindSwitch:
			fs.Bool(f.name, false, f.usage)
			if switches[f.key] == nil {
				order = append(order, f.key)
			}
			switches[f.key] = append(switches[f.key], f.name)
		case kindStrings:
			fs.StringArray(f.name, nil, f.usage+" (repeat for more)")
		case kindList:
			fs.StringSlice(f.name, nil, f.usage+" (comma-separated)")
		}
		markNoEnv(fs, f.name)
	}
	for _, key := range order {
		if names := switches[key]; len(names) > 1 {
			cmd.MarkFlagsMutuallyExclusive(names...)
		}
	}
}

// attrValues reads the given (changed) flags as attribute values, resolving
// references through c.
func attrValues(ctx context.Context, c *client.Client, fs *pflag.FlagSet, flags []attrFlag) (map[string]any, error) {
	vals := map[string]any{}
	for _, f := range flags {
		if !fs.Changed(f.name) {
			continue
		}
		var (
			v   any
			err error
		)
		switch f.kind {
		case kindString:
			v, err = fs.GetString(f.name)
		case kindInt:
			v, err = fs.GetInt(f.name)
		case kindSwitch:
			var on bool
			on, err = fs.GetBool(f.name)
			// --shared=false means the opposite of --shared.
			v = on == f.value
		case kindStrings:
			var list []string
			if list, err = fs.GetStringArray(f.name); err == nil && f.conv != nil {
				out := make([]any, 0, len(list))
				for _, s := range list {
					var x any
					if x, err = f.conv(s); err != nil {
						break
					}
					out = append(out, x)
				}
				v = out
			} else {
				v = list
			}
		case kindList:
			var list []string
			if list, err = fs.GetStringSlice(f.name); err == nil && list == nil {
				list = []string{}
			}
			v = list
		case kindClear:
			v = nil
		case kindRef:
			var arg string
			if arg, err = fs.GetString(f.name); err == nil {
				var obj map[string]any
				if obj, err = c.Find(ctx, f.ref.collection, f.ref.singular, arg); err == nil {
					v = obj["id"]
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", f.name, err)
		}
		setAttr(vals, f.key, v)
	}
	return vals, nil
}

// setAttr sets key in vals; a dotted key ("external_gateway_info.network_id")
// sets a member of a nested object.
func setAttr(vals map[string]any, key string, v any) {
	head, rest, nested := strings.Cut(key, ".")
	if !nested {
		vals[key] = v
		return
	}
	sub, ok := vals[head].(map[string]any)
	if !ok {
		sub = map[string]any{}
		vals[head] = sub
	}
	setAttr(sub, rest, v)
}

// newResourceCmd is the command group of one resource.
func newResourceCmd(a *app, r *resource) *cobra.Command {
	name := r.singular
	if r.command != "" {
		name = r.command
	}
	cmd := &cobra.Command{
		Use:   name,
		Short: "Manage " + r.collection,
	}
	cmd.AddCommand(newListCmd(a, r), newShowCmd(a, r))
	if !r.readOnly {
		cmd.AddCommand(newCreateCmd(a, r), newDeleteCmd(a, r))
		if !r.noUpdate {
			cmd.AddCommand(newUpdateCmd(a, r))
		}
	}
	if r.extra != nil {
		cmd.AddCommand(r.extra(a, r)...)
	}
	return cmd
}

func newCreateCmd(a *app, r *resource) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a " + r.singular,
		Args:  cobra.NoArgs,
	}
	if r.nameArg {
		cmd.Use = "create NAME"
		cmd.Args = cobra.ExactArgs(1)
	}
	flags := r.createFlags
	if r.tags {
		flags = append(flags[:len(flags):len(flags)], attrFlag{name: "tag", key: "tags", kind: kindStrings, usage: "tag to add"})
	}
	defineAttrFlags(cmd, flags)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := a.client()
		if err != nil {
			return err
		}
		body, err := attrValues(cmd.Context(), c, cmd.Flags(), flags)
		if err != nil {
			return err
		}
		if r.nameArg {
			body["name"] = args[0]
		}
		if r.createDefaults != nil {
			r.createDefaults(body)
		}
		obj, err := c.Create(cmd.Context(), r.collection, r.singular, body)
		if err != nil {
			return err
		}
		return a.printObject(r, obj)
	}
	return cmd
}

func newListCmd(a *app, r *resource) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List " + r.collection,
		Args:    cobra.NoArgs,
	}
	long := cmd.Flags().Bool("long", false, "show more columns")
	defineAttrFlags(cmd, r.listFlags)
	var tags *[]string
	if r.tags {
		tags = cmd.Flags().StringArray("tag", nil, "only "+r.collection+" with this tag (repeat: with all of them)")
		markNoEnv(cmd.Flags(), "tag")
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := a.client()
		if err != nil {
			return err
		}
		filters, err := attrValues(cmd.Context(), c, cmd.Flags(), r.listFlags)
		if err != nil {
			return err
		}
		query := url.Values{}
		for k, v := range filters {
			query.Set(k, queryText(v))
		}
		if tags != nil && len(*tags) > 0 {
			query.Set("tags", strings.Join(*tags, ","))
		}
		objs, err := c.List(cmd.Context(), r.collection, query)
		if err != nil {
			return err
		}
		if a.opts.output == outputJSON {
			if objs == nil {
				objs = []map[string]any{}
			}
			return printJSON(a.stdout, objs)
		}
		cols := r.listColumns
		if *long {
			cols = append(cols[:len(cols):len(cols)], r.longColumns...)
		}
		headers := make([]string, len(cols))
		for i, col := range cols {
			headers[i] = col.header
		}
		rows := make([][]string, len(objs))
		for i, o := range objs {
			rows[i] = make([]string, len(cols))
			for j, col := range cols {
				rows[i][j] = r.format(col.key, o[col.key])
			}
		}
		return printTable(a.stdout, headers, rows)
	}
	return cmd
}

// queryText is a filter value as Neutron reads it from a query string.
func queryText(v any) string {
	switch x := v.(type) {
	case bool:
		return strconv.FormatBool(x)
	case []string:
		return strings.Join(x, ",")
	default:
		return fmt.Sprint(x)
	}
}

func newShowCmd(a *app, r *resource) *cobra.Command {
	return &cobra.Command{
		Use:               "show ID|NAME",
		Short:             "Show a " + r.singular,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeNames(r),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			obj, err := c.Find(cmd.Context(), r.collection, r.singular, args[0])
			if err != nil {
				return err
			}
			return a.printObject(r, obj)
		},
	}
}

func newUpdateCmd(a *app, r *resource) *cobra.Command {
	cmd := &cobra.Command{
		Use:               "update ID|NAME",
		Aliases:           []string{"set"},
		Short:             "Change attributes of a " + r.singular,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeNames(r),
	}
	defineAttrFlags(cmd, r.updateFlags)
	var (
		addTags *[]string
		noTags  *bool
	)
	if r.tags {
		addTags = cmd.Flags().StringArray("tag", nil, "tag to add (repeat for more)")
		noTags = cmd.Flags().Bool("no-tag", false, "remove all tags first (with --tag: replace them)")
		markNoEnv(cmd.Flags(), "tag", "no-tag")
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		c, err := a.client()
		if err != nil {
			return err
		}
		body, err := attrValues(ctx, c, cmd.Flags(), r.updateFlags)
		if err != nil {
			return err
		}
		tagChange := addTags != nil && (len(*addTags) > 0 || *noTags)
		if len(body) == 0 && !tagChange {
			return fmt.Errorf("nothing to update: give at least one attribute flag (see %s --help)", cmd.CommandPath())
		}
		obj, err := c.Find(ctx, r.collection, r.singular, args[0])
		if err != nil {
			return err
		}
		id, _ := obj["id"].(string)
		if len(body) > 0 {
			if obj, err = c.Update(ctx, r.collection, r.singular, id, body); err != nil {
				return err
			}
		}
		if tagChange {
			// Neutron does not take tags in a PUT of the resource: they have
			// their own sub-resource, replaced as a whole.
			var tags []string
			if !*noTags {
				tags = stringList(obj["tags"])
			}
			for _, t := range *addTags {
				if !slices.Contains(tags, t) {
					tags = append(tags, t)
				}
			}
			got, err := c.ReplaceTags(ctx, r.collection, id, tags)
			if err != nil {
				return err
			}
			obj["tags"] = got
		}
		return a.printObject(r, obj)
	}
	return cmd
}

func newDeleteCmd(a *app, r *resource) *cobra.Command {
	return &cobra.Command{
		Use:               "delete ID|NAME...",
		Aliases:           []string{"rm"},
		Short:             "Delete " + r.collection,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: a.completeNames(r),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			// Like openstack: try every argument, report each failure, fail at the end.
			failed := 0
			for _, arg := range args {
				err := func() error {
					obj, err := c.Find(cmd.Context(), r.collection, r.singular, arg)
					if err != nil {
						return err
					}
					id, _ := obj["id"].(string)
					return c.Delete(cmd.Context(), r.collection, id)
				}()
				if err != nil {
					failed++
					fmt.Fprintf(a.stderr, "Failed to delete %s with name or ID %q: %v\n", r.singular, arg, err)
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d %s failed to delete", failed, len(args), r.collection)
			}
			return nil
		},
	}
}

// printObject prints one resource: a Field/Value table, or its JSON.
func (a *app) printObject(r *resource, obj map[string]any) error {
	if a.opts.output == outputJSON {
		return printJSON(a.stdout, obj)
	}
	seen := map[string]bool{}
	var rows [][]string
	for _, k := range r.showFields {
		seen[k] = true
		rows = append(rows, []string{k, r.format(k, obj[k])})
	}
	var rest []string
	for k := range obj {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		rows = append(rows, []string{k, r.format(k, obj[k])})
	}
	return printTable(a.stdout, []string{"Field", "Value"}, rows)
}

// format is how attribute key shows in a table.
func (r *resource) format(key string, v any) string {
	if f := r.formats[key]; f != nil && v != nil {
		return f(v)
	}
	return formatValue(v)
}

// completeNames completes an ID|NAME argument from the API. Completion
// runs without the persistent hooks, so it binds the flags itself.
func (a *app) completeNames(r *resource) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if err := bindFlags(cmd, a.lookupEnv); err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := a.client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		// A shell waiting on a dead endpoint is worse than no completion.
		ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
		defer cancel()
		objs, err := c.List(ctx, r.collection, url.Values{"fields": {"id", "name"}})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, o := range objs {
			id, _ := o["id"].(string)
			name, _ := o["name"].(string)
			if name != "" && strings.HasPrefix(name, toComplete) {
				out = append(out, cobra.CompletionWithDesc(name, id))
			}
			if strings.HasPrefix(id, toComplete) {
				out = append(out, cobra.CompletionWithDesc(id, name))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// stringList reads a JSON list of strings (tags).
func stringList(v any) []string {
	switch x := v.(type) {
	case []string:
		return append([]string(nil), x...)
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
