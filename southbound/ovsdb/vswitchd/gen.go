// Package vswitchd holds the libovsdb models of the Open_vSwitch database,
// generated from the vswitch.ovsschema copy beside them (OVS 3.1).
package vswitchd

//go:generate go tool modelgen -p vswitchd -o . vswitch.ovsschema
