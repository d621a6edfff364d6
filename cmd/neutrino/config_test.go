package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// newBindTestTree is a root like ours (persistent --config) with an
// agent-like command whose flags cover every kind the binder handles, and a
// sibling with a flag of its own.
func newBindTestTree(lookupEnv func(string) (string, bool), got map[string]string) *cobra.Command {
	cobra.EnableTraverseRunHooks = true
	root := &cobra.Command{
		Use:           "neutrino",
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return bindFlags(cmd, lookupEnv)
		},
	}
	root.PersistentFlags().String(configFlag, "", "")
	root.PersistentFlags().String("endpoint", "http://default", "")

	agent := &cobra.Command{
		Use: "agent",
		// A hook of its own must not stop the root's binding.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.Flags().VisitAll(func(f *pflag.Flag) { got[f.Name] = f.Value.String() })
			return nil
		},
	}
	f := agent.Flags()
	f.Bool("server", false, "")
	f.Int("bootstrap-expect", 0, "")
	f.StringSlice("join", []string{"default:7301"}, "")
	f.StringArray("vni-ranges", nil, "")
	f.StringToString("bridge-mappings", nil, "")
	f.Duration("raft-timeout", 0, "")
	f.Uint64("big", 0, "")
	f.String("data-dir", "", "")
	f.String("name", "", "")
	markNoEnv(f, "name")
	f.String("must", "x", "")
	_ = agent.MarkFlagRequired("must")

	other := &cobra.Command{Use: "other", RunE: func(*cobra.Command, []string) error { return nil }}
	other.Flags().String("only-other", "", "")

	root.AddCommand(agent, other)
	return root
}

func TestBindFlags(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		config     string // written to a file; named by --config unless env names it
		configName string // "env": NEUTRINO_CONFIG names the file instead of --config
		want       map[string]string
		wantErr    string
	}{
		{
			name: "defaults",
			args: []string{"agent", "--must", "m"},
			want: map[string]string{"server": "false", "join": "[default:7301]", "endpoint": "http://default", "bootstrap-expect": "0"},
		},
		{
			name:   "config file sets every kind",
			args:   []string{"agent"},
			config: `{"endpoint": "http://cfg", "server": true, "bootstrap-expect": 3, "join": ["a:1", "b:2"], "vni-ranges": ["1:10", "20:30"], "bridge-mappings": {"physnet1": "br-ex", "physnet2": "br-2"}, "raft-timeout": "2s", "big": 9000000000, "data-dir": "/var/lib/n", "must": "from-file"}`,
			want: map[string]string{
				"endpoint": "http://cfg", "server": "true", "bootstrap-expect": "3", "join": "[a:1,b:2]",
				"vni-ranges": "[1:10,20:30]", "bridge-mappings": "[physnet1=br-ex,physnet2=br-2]",
				"raft-timeout": "2s", "big": "9000000000", "data-dir": "/var/lib/n", "must": "from-file",
			},
		},
		{
			name:   "env beats config file",
			args:   []string{"agent", "--must", "m"},
			env:    map[string]string{"NEUTRINO_ENDPOINT": "http://env", "NEUTRINO_BOOTSTRAP_EXPECT": "5", "NEUTRINO_SERVER": "false"},
			config: `{"endpoint": "http://cfg", "bootstrap-expect": 3, "server": true}`,
			want:   map[string]string{"endpoint": "http://env", "bootstrap-expect": "5", "server": "false"},
		},
		{
			name:   "flag beats env and config file",
			args:   []string{"agent", "--must", "m", "--endpoint", "http://flag", "--join", "f:1"},
			env:    map[string]string{"NEUTRINO_ENDPOINT": "http://env", "NEUTRINO_JOIN": "e:1"},
			config: `{"endpoint": "http://cfg", "join": ["c:1"]}`,
			want:   map[string]string{"endpoint": "http://flag", "join": "[f:1]"},
		},
		{
			name: "env slices: comma list or JSON array, replacing the default",
			args: []string{"agent", "--must", "m"},
			env:  map[string]string{"NEUTRINO_JOIN": "a:1, b:2", "NEUTRINO_VNI_RANGES": `["1:10", "20:30"]`},
			want: map[string]string{"join": "[a:1,b:2]", "vni-ranges": "[1:10,20:30]"},
		},
		{
			name:   "config slice as a comma string",
			args:   []string{"agent", "--must", "m"},
			config: `{"join": "a:1,b:2"}`,
			want:   map[string]string{"join": "[a:1,b:2]"},
		},
		{
			name: "env map flag",
			args: []string{"agent", "--must", "m"},
			env:  map[string]string{"NEUTRINO_BRIDGE_MAPPINGS": "physnet1=br-ex"},
			want: map[string]string{"bridge-mappings": "[physnet1=br-ex]"},
		},
		{
			name: "empty env is unset",
			args: []string{"agent", "--must", "m"},
			env:  map[string]string{"NEUTRINO_ENDPOINT": ""},
			want: map[string]string{"endpoint": "http://default"},
		},
		{
			name:   "null in the file keeps the default",
			args:   []string{"agent", "--must", "m"},
			config: `{"join": null}`,
			want:   map[string]string{"join": "[default:7301]"},
		},
		{
			name:   "no-env flags ignore the environment but take the file",
			args:   []string{"agent", "--must", "m"},
			env:    map[string]string{"NEUTRINO_NAME": "from-env"},
			config: `{"name": "from-file"}`,
			want:   map[string]string{"name": "from-file"},
		},
		{
			name: "no-env flags ignore the environment",
			args: []string{"agent", "--must", "m"},
			env:  map[string]string{"NEUTRINO_NAME": "from-env"},
			want: map[string]string{"name": ""},
		},
		{
			name:       "NEUTRINO_CONFIG names the file",
			args:       []string{"agent", "--must", "m"},
			config:     `{"endpoint": "http://cfg"}`,
			configName: "env",
			want:       map[string]string{"endpoint": "http://cfg"},
		},
		{
			name:   "a key of another command is ignored",
			args:   []string{"agent", "--must", "m"},
			config: `{"only-other": "x", "server": true}`,
			want:   map[string]string{"server": "true"},
		},
		{
			name:    "a key no command has is an error",
			args:    []string{"agent", "--must", "m"},
			config:  `{"sever": true}`,
			wantErr: `unknown keys ["sever"]`,
		},
		{
			name:    "the file cannot name another file",
			args:    []string{"agent", "--must", "m"},
			config:  `{"config": "other.json"}`,
			wantErr: `unknown keys ["config"]`,
		},
		{
			name:    "the file must be an object",
			args:    []string{"agent", "--must", "m"},
			config:  `["server"]`,
			wantErr: "want a JSON object",
		},
		{
			name:    "a bad env value names the variable",
			args:    []string{"agent", "--must", "m"},
			env:     map[string]string{"NEUTRINO_BOOTSTRAP_EXPECT": "three"},
			wantErr: "environment NEUTRINO_BOOTSTRAP_EXPECT",
		},
		{
			name:    "a bad file value names the key",
			args:    []string{"agent", "--must", "m"},
			config:  `{"server": "maybe"}`,
			wantErr: `"server"`,
		},
		{
			name:    "a list for a scalar flag",
			args:    []string{"agent", "--must", "m"},
			config:  `{"data-dir": ["a", "b"]}`,
			wantErr: "takes one string",
		},
		{
			name:    "required flags are still checked",
			args:    []string{"agent"},
			wantErr: `required flag(s) "must" not set`,
		},
		{
			name: "a required flag can come from the environment",
			args: []string{"agent"},
			env:  map[string]string{"NEUTRINO_MUST": "e"},
			want: map[string]string{"must": "e"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range tt.env {
				env[k] = v
			}
			args := tt.args
			if tt.config != "" {
				path := filepath.Join(t.TempDir(), "agent.json")
				if err := os.WriteFile(path, []byte(tt.config), 0o600); err != nil {
					t.Fatal(err)
				}
				if tt.configName == "env" {
					env["NEUTRINO_CONFIG"] = path
				} else {
					args = append(args, "--config", path)
				}
			}
			lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
			got := map[string]string{}
			root := newBindTestTree(lookup, got)
			root.SetArgs(args)
			err := root.Execute()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range tt.want {
				if got[k] != want {
					t.Errorf("--%s = %q, want %q", k, got[k], want)
				}
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	for flag, want := range map[string]string{
		"endpoint":         "NEUTRINO_ENDPOINT",
		"bootstrap-expect": "NEUTRINO_BOOTSTRAP_EXPECT",
		"data-dir":         "NEUTRINO_DATA_DIR",
	} {
		if got := envName(flag); got != want {
			t.Errorf("envName(%q) = %q, want %q", flag, got, want)
		}
	}
}
