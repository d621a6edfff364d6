package fsm

// Per-project quotas (issue 19).
//
// Limits live in TableQuotas: one row per project with explicit limits and
// one row (QuotaDefaultsID) with the defaults the leader's configuration
// asks for. Enforcement happens here, at apply time, after a command's
// handler ran inside its write transaction: every object the command
// created in a counted table is charged to its project, and when a
// project's count then exceeds its limit the whole command is rejected
// with OverQuota. Two concurrent creates are two log entries applied one
// after the other, so they cannot both pass the last free unit.

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	memdb "github.com/hashicorp/go-memdb"
)

// Quota commands (160-179 are ops').
const (
	// CmdQuotaSet sets some of a project's limits (QuotaSetRequest).
	CmdQuotaSet CommandType = 160
	// CmdQuotaDelete resets a project to the defaults (QuotaDeleteRequest).
	CmdQuotaDelete CommandType = 161
	// CmdQuotaDefaults replaces the default limits (QuotaDefaultsRequest).
	CmdQuotaDefaults CommandType = 162
)

// TableQuotas holds explicit quota limits per project and the defaults.
const TableQuotas = "quotas"

// QuotaDefaultsID is the row of TableQuotas that holds the defaults; "*"
// is no valid project id for the API.
const QuotaDefaultsID = "*"

// QuotaUnlimited is the limit that never refuses (Neutron's -1).
const QuotaUnlimited = -1

// ErrTypeOverQuota is Neutron's error type for a create over a limit.
const ErrTypeOverQuota = "OverQuota"

// QuotaResources maps each quota resource to the table it counts, in
// Neutron's names.
var QuotaResources = map[string]string{
	"network":             TableNetworks,
	"subnet":              TableSubnets,
	"port":                TablePorts,
	"router":              TableRouters,
	"floatingip":          TableFloatingIPs,
	"security_group":      TableSecurityGroups,
	"security_group_rule": TableSecurityGroupRules,
}

// QuotaResourceNames lists QuotaResources' keys, sorted.
func QuotaResourceNames() []string { return slices.Sorted(maps.Keys(QuotaResources)) }

// Quota is a row of TableQuotas: the limits that were set for a project
// (a resource without an entry takes the default).
type Quota struct {
	ProjectID   string
	Limits      map[string]int
	ModifyIndex uint64
}

// QuotaSetRequest sets the given limits of a project and keeps the others.
type QuotaSetRequest struct {
	ProjectID string
	Limits    map[string]int
}

// QuotaDeleteRequest drops a project's explicit limits.
type QuotaDeleteRequest struct {
	ProjectID string
}

// QuotaDefaultsRequest replaces the default limits; a resource without an
// entry is unlimited by default.
type QuotaDefaultsRequest struct {
	Limits map[string]int
}

func quotaSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: TableQuotas,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ProjectID"}},
		},
	}
}

func quotaHandlers() map[CommandType]handler {
	return map[CommandType]handler{
		CmdQuotaSet:      applyQuotaSet,
		CmdQuotaDelete:   applyQuotaDelete,
		CmdQuotaDefaults: applyQuotaDefaults,
	}
}

func quotaCommandName(t CommandType) string {
	switch t {
	case CmdQuotaSet:
		return "QuotaSet"
	case CmdQuotaDelete:
		return "QuotaDelete"
	case CmdQuotaDefaults:
		return "QuotaDefaults"
	}
	return ""
}

// CheckQuotaLimits validates limits: known resources, each >= -1.
func CheckQuotaLimits(limits map[string]int) error {
	for _, name := range slices.Sorted(maps.Keys(limits)) {
		if _, ok := QuotaResources[name]; !ok {
			return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for operation: unknown quota resource %s.", name)
		}
		if limits[name] < QuotaUnlimited {
			return Errorf(CodeBadRequest, ErrTypeInvalidInput,
				"Invalid input for %s. Reason: '%d' is too small - must be at least '-1'.", name, limits[name])
		}
	}
	return nil
}

func applyQuotaSet(txn *memdb.Txn, body []byte, index uint64) error {
	var req QuotaSetRequest
	mustDecode(body, &req, index)
	if req.ProjectID == "" || req.ProjectID == QuotaDefaultsID {
		return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for operation: bad project id %q.", req.ProjectID)
	}
	if err := CheckQuotaLimits(req.Limits); err != nil {
		return err
	}
	v := View{txn: txn}
	q := &Quota{ProjectID: req.ProjectID, Limits: map[string]int{}, ModifyIndex: index}
	if cur := v.quotaRow(req.ProjectID); cur != nil {
		maps.Copy(q.Limits, cur.Limits)
	}
	maps.Copy(q.Limits, req.Limits)
	insert(txn, TableQuotas, q, index)
	return nil
}

func applyQuotaDelete(txn *memdb.Txn, body []byte, index uint64) error {
	var req QuotaDeleteRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	cur := v.quotaRow(req.ProjectID)
	if cur == nil || req.ProjectID == QuotaDefaultsID {
		// Neutron answers 404 for a project without explicit quotas.
		return Errorf(CodeNotFound, "TenantQuotaNotFound", "Quota for tenant %s could not be found.", req.ProjectID)
	}
	remove(txn, TableQuotas, cur, index)
	return nil
}

func applyQuotaDefaults(txn *memdb.Txn, body []byte, index uint64) error {
	var req QuotaDefaultsRequest
	mustDecode(body, &req, index)
	if err := CheckQuotaLimits(req.Limits); err != nil {
		return err
	}
	insert(txn, TableQuotas, &Quota{ProjectID: QuotaDefaultsID, Limits: maps.Clone(req.Limits), ModifyIndex: index}, index)
	return nil
}

func (v *View) quotaRow(project string) *Quota {
	return first[*Quota](v.txn, TableQuotas, "id", project)
}

// QuotaDefaults returns the default limit of every resource.
func (v *View) QuotaDefaults() map[string]int {
	out := make(map[string]int, len(QuotaResources))
	d := v.quotaRow(QuotaDefaultsID)
	for name := range QuotaResources {
		out[name] = QuotaUnlimited
		if d != nil {
			if l, ok := d.Limits[name]; ok {
				out[name] = l
			}
		}
	}
	return out
}

// QuotaOf returns a project's effective limit of every resource.
func (v *View) QuotaOf(project string) map[string]int {
	out := v.QuotaDefaults()
	if q := v.quotaRow(project); q != nil {
		maps.Copy(out, q.Limits)
	}
	return out
}

// QuotaProjects lists the projects with explicit limits, ordered by id.
func (v *View) QuotaProjects() []string {
	var out []string
	for _, q := range all[*Quota](v.txn, TableQuotas, "id") {
		if q.ProjectID != QuotaDefaultsID {
			out = append(out, q.ProjectID)
		}
	}
	return out
}

// QuotaUsage counts a project's objects of a quota resource.
func (v *View) QuotaUsage(project, resource string) int {
	return countProject(v.txn, QuotaResources[resource], project, -1)
}

// countProject counts a project's objects in a table, stopping at max
// (none when negative): the quota check needs to know only whether the
// count passed the limit, so its cost is bounded by the limit.
func countProject(txn *memdb.Txn, table, project string, max int) int {
	it, err := txn.Get(table, "project", project)
	if err != nil {
		panic(fmt.Sprintf("fsm: count %s: %v", table, err))
	}
	n := 0
	for raw := it.Next(); raw != nil && n != max; raw = it.Next() {
		n++
	}
	return n
}

// projectOf returns the project of a model object, "" for any other row.
func projectOf(obj any) string {
	if o, ok := obj.(Object); ok {
		return o.GetMeta().ProjectID
	}
	return ""
}

// checkQuotas rejects a command whose transaction created objects that put
// their project over a limit. It is cheap when no limit is set: one lookup
// of the (then empty) quota table.
func checkQuotas(txn *memdb.Txn) error {
	if raw, err := txn.First(TableQuotas, "id"); err != nil || raw == nil {
		return nil
	}
	tableResource := make(map[string]string, len(QuotaResources))
	for name, table := range QuotaResources {
		tableResource[table] = name
	}
	type key struct{ resource, project string }
	created := map[key]bool{}
	for _, ch := range txn.Changes() {
		name, ok := tableResource[ch.Table]
		if !ok || ch.Before != nil || ch.After == nil {
			continue
		}
		if p := projectOf(ch.After); p != "" {
			created[key{name, p}] = true
		}
	}
	if len(created) == 0 {
		return nil
	}
	v := View{txn: txn}
	var over []string
	for k := range created {
		limit := v.QuotaOf(k.project)[k.resource]
		if limit == QuotaUnlimited {
			continue
		}
		if countProject(txn, QuotaResources[k.resource], k.project, limit+1) > limit && !slices.Contains(over, k.resource) {
			over = append(over, k.resource)
		}
	}
	if len(over) == 0 {
		return nil
	}
	sort.Strings(over)
	return Errorf(CodeConflict, ErrTypeOverQuota, "Quota exceeded for resources: ['%s'].", strings.Join(over, "', '"))
}
