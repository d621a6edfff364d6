package main

// Flag values from the environment and from a config file, for every
// command of the binary (the agent's too), without viper.
//
// A flag not given on the command line takes its value from the
// environment variable NEUTRINO_<NAME> (the flag name upper-cased, '-'
// replaced by '_'; an empty variable counts as unset), else from the config
// file, else keeps its default. The config file is named by --config or
// NEUTRINO_CONFIG and is one JSON object whose keys are flag names:
//
//	{
//	  "endpoint": "http://10.0.0.1:9696",
//	  "server": true,
//	  "bootstrap-expect": 3,
//	  "retry-join": ["10.0.0.2:7301", "10.0.0.3:7301"],
//	  "bridge-mappings": {"physnet1": "br-ex"},
//	  "raft-timeout": "2s"
//	}
//
// Strings, numbers and booleans are given to the flag as its command-line
// text. A slice flag takes a JSON array, or a comma-separated string (in a
// file or in the environment; in the environment a JSON array works too),
// and the list replaces the default rather than appending to it. An object
// is given to a map flag as "k=v,k2=v2". A key that no command of the binary
// has is an error, so typos are caught; a key that only other commands have
// is ignored, so one file can serve several commands.
//
// Values from either source mark the flag as changed, exactly as if typed:
// cobra's required-flag and flag-group checks, which run after the
// persistent pre-run hooks, see them.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

const (
	envPrefix  = "NEUTRINO_"
	configFlag = "config"
	// annotationNoEnv marks a flag the environment must not set: the
	// attribute flags of resource commands, where an exported NEUTRINO_NAME
	// or NEUTRINO_SHARED would silently rename or re-share networks. A
	// config file, named on purpose, still sets them.
	annotationNoEnv = "neutrino/no-env"
)

// envName is the environment variable that sets flag name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// markNoEnv keeps the environment from setting the named flags of fs.
func markNoEnv(fs *pflag.FlagSet, names ...string) {
	for _, n := range names {
		_ = fs.SetAnnotation(n, annotationNoEnv, []string{"true"})
	}
}

// bindFlags fills every flag of cmd that was not given on the command line
// from the environment, then from the config file. It must run after flag
// parsing (the root's persistent pre-run hook does it for every command).
func bindFlags(cmd *cobra.Command, lookupEnv func(string) (string, bool)) error {
	fs := cmd.Flags()
	env := func(name string) (string, bool) {
		v, ok := lookupEnv(name)
		return v, ok && v != ""
	}

	var (
		cfgPath string
		cfg     map[string]json.RawMessage
	)
	if f := fs.Lookup(configFlag); f != nil {
		cfgPath = f.Value.String()
		if !f.Changed {
			if v, ok := env(envName(configFlag)); ok {
				cfgPath = v
				if err := fs.Set(configFlag, v); err != nil {
					return fmt.Errorf("%s: %w", envName(configFlag), err)
				}
			}
		}
	}
	if cfgPath != "" {
		var err error
		if cfg, err = loadConfig(cfgPath, knownFlags(cmd.Root())); err != nil {
			return err
		}
	}

	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" || f.Name == configFlag {
			return
		}
		if _, noEnv := f.Annotations[annotationNoEnv]; !noEnv {
			if v, ok := env(envName(f.Name)); ok {
				if err := setFromText(fs, f, v); err != nil {
					errs = append(errs, fmt.Errorf("environment %s: %w", envName(f.Name), err))
				}
				return
			}
		}
		if raw, ok := cfg[f.Name]; ok {
			if err := setFromJSON(fs, f, raw); err != nil {
				errs = append(errs, fmt.Errorf("config file %s: %q: %w", cfgPath, f.Name, err))
			}
		}
	})
	return errors.Join(errs...)
}

// knownFlags is every flag name of every command under root.
func knownFlags(root *cobra.Command) map[string]bool {
	known := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		add := func(f *pflag.Flag) { known[f.Name] = true }
		c.Flags().VisitAll(add)
		c.PersistentFlags().VisitAll(add)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return known
}

// loadConfig reads a config file: one JSON object keyed by flag names.
func loadConfig(path string, known map[string]bool) (map[string]json.RawMessage, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("config file %s: want a JSON object keyed by flag names: %w", path, err)
	}
	var unknown []string
	for k := range cfg {
		if !known[k] || k == configFlag {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("config file %s: unknown keys %q: keys are flag names", path, unknown)
	}
	return cfg, nil
}

// setFromText sets f from a string (an environment variable's value).
func setFromText(fs *pflag.FlagSet, f *pflag.Flag, v string) error {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		list, err := parseList(v)
		if err != nil {
			return err
		}
		return replaceSlice(f, sv, list)
	}
	return fs.Set(f.Name, v)
}

// setFromJSON sets f from a config file value.
func setFromJSON(fs *pflag.FlagSet, f *pflag.Flag, raw json.RawMessage) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // so 9000000000 stays "9000000000", not "9e+09"
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	sv, isSlice := f.Value.(pflag.SliceValue)
	switch x := v.(type) {
	case nil:
		return nil // null leaves the default, as an absent key does
	case []any:
		if !isSlice {
			return fmt.Errorf("a list is given but the flag takes one %s", f.Value.Type())
		}
		list := make([]string, 0, len(x))
		for _, e := range x {
			s, err := scalarText(e)
			if err != nil {
				return err
			}
			list = append(list, s)
		}
		return replaceSlice(f, sv, list)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		pairs := make([]string, 0, len(keys))
		for _, k := range keys {
			s, err := scalarText(x[k])
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			pairs = append(pairs, k+"="+s)
		}
		return fs.Set(f.Name, strings.Join(pairs, ","))
	default:
		s, err := scalarText(x)
		if err != nil {
			return err
		}
		return setFromText(fs, f, s)
	}
}

// replaceSlice sets a slice flag to exactly list. Replace does not mark the
// flag changed, so it is marked here for cobra's required-flag check.
func replaceSlice(f *pflag.Flag, sv pflag.SliceValue, list []string) error {
	if err := sv.Replace(list); err != nil {
		return err
	}
	f.Changed = true
	return nil
}

// parseList reads a JSON array of scalars or a comma-separated list.
func parseList(v string) ([]string, error) {
	if strings.HasPrefix(strings.TrimSpace(v), "[") {
		dec := json.NewDecoder(strings.NewReader(v))
		dec.UseNumber()
		var arr []any
		if err := dec.Decode(&arr); err != nil {
			return nil, fmt.Errorf("want a JSON array or a comma-separated list: %w", err)
		}
		list := make([]string, 0, len(arr))
		for _, e := range arr {
			s, err := scalarText(e)
			if err != nil {
				return nil, err
			}
			list = append(list, s)
		}
		return list, nil
	}
	list := []string{}
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			list = append(list, s)
		}
	}
	return list, nil
}

// scalarText is a JSON scalar as flag text.
func scalarText(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return strconv.FormatBool(x), nil
	default:
		return "", fmt.Errorf("want a string, number or boolean, not %T", v)
	}
}
