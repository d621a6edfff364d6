package scenarios_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"strconv"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"neutrino/fsm"
	"neutrino/scenarios/harness"
)

// predictedID is the id the API gives the first object a create makes:
// derived from the request's identity (project/Idempotency-Key) and its
// fingerprint (method, path, body), so that a retried create builds the
// same ids (northbound newID). The test relies on it to choose ids.
func predictedID(project, key, path string, body []byte) string {
	fp := sha256.New()
	fp.Write([]byte(http.MethodPost + "\x00" + path + "\x00"))
	fp.Write(body)
	sum := sha256.Sum256([]byte(project + "/" + key + "\x00" + hex.EncodeToString(fp.Sum(nil)) + "\x00" + strconv.Itoa(0)))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func fnv32a(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

// collidingKeys finds Idempotency-Keys for a create by project pa (body
// ba) and one by project pb (body bb) whose object ids collide under
// FNV-1a-32, the hash the data path used before keys were allocated: a
// birthday search over about 2^17 keys per side.
func collidingKeys(t *testing.T, path, pa string, ba []byte, pb string, bb []byte) (ka, kb string) {
	t.Helper()
	salt := rand.Text()[:8]
	seen := map[uint32]string{}
	const n = 1 << 18
	for i := range n {
		k := fmt.Sprintf("keys-%s-a%d", salt, i)
		seen[fnv32a(predictedID(pa, k, path, ba))] = k
	}
	for i := range 4 * n {
		k := fmt.Sprintf("keys-%s-b%d", salt, i)
		if a, ok := seen[fnv32a(predictedID(pb, k, path, bb))]; ok {
			return a, k
		}
	}
	t.Fatalf("no colliding ids for %s among %d x %d keys", path, n, 4*n)
	return "", ""
}

// createWithKey POSTs a raw JSON body as project with an Idempotency-Key
// and checks the object got the id predicted for it.
func createWithKey(p *harness.Env, project, key, path, singular string, body []byte) string {
	p.TB.Helper()
	hdr := map[string]string{"X-Project-Id": project, "X-User-Id": "user-" + project, "X-Roles": "member", "Idempotency-Key": key}
	res := p.MustCall(http.StatusCreated, http.MethodPost, p.D.Endpoint()+path, hdr, json.RawMessage(body))
	var out map[string]struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(res.Body, &out); err != nil {
		p.TB.Fatalf("%s: %v", path, err)
	}
	id := out[singular].ID
	if want := predictedID(project, key, path, body); id != want {
		p.TB.Fatalf("%s: id %s, predicted %s: the API no longer derives ids as this test assumes", path, id, want)
	}
	return id
}

// TestKeysIsolateCollidingTenants runs two projects with the same layout
// and the same addresses (10.70.0.0/24 and 10.71.0.0/24 joined by a
// router) whose routers' ids, and whose security group rules' ids,
// collide under the FNV-1a-32 hash the data path used as router key,
// SNAT zone, conjunction id and cookie before keys were allocated. With
// the hash, the two routers shared one register value (one tenant's
// packets took the other's routes to the other's VMs) and the two rules
// one conjunction (a port of one group admitted what the other group's
// rule admits). With allocated keys each project reaches only its own
// VMs, and each group admits only its own rules' traffic.
func TestKeysIsolateCollidingTenants(t *testing.T) {
	p := sharedUp(t, pipelineTopo)
	requireAPI(t, p.D.Endpoint(), "networks", "subnets", "ports", "routers", "security-groups")
	salt := rand.Text()[:6]
	projects := [2]string{"keysa" + salt, "keysb" + salt}
	routerBody := func(i int) []byte { return []byte(fmt.Sprintf(`{"router":{"name":"keys-%c"}}`, 'a'+i)) }
	ka, kb := collidingKeys(t, "/v2.0/routers", projects[0], routerBody(0), projects[1], routerBody(1))

	type tenant struct {
		nc           *gophercloud.ServiceClient
		router       string
		near, far    harness.VM // on 10.70.0.0/24 and 10.71.0.0/24
		guarded      harness.VM // in the group with the colliding rule
		group, rule  string
		farIP, guard string
	}
	var ts [2]tenant
	farIPs := [2]string{"10.71.0.10", "10.71.0.20"}
	guardIPs := [2]string{"10.70.0.30", "10.70.0.40"}
	for i := range ts {
		tn := &ts[i]
		tn.nc = harness.NetworkClient(p.D.Endpoints()[i%len(p.D.Endpoints())], projects[i])
		tn.farIP, tn.guard = farIPs[i], guardIPs[i]
		tn.router = createWithKey(p, projects[i], []string{ka, kb}[i], "/v2.0/routers", "router", routerBody(i))
		open := p.OpenGroup(tn.nc, fmt.Sprintf("keys-open-%d", i))
		nearNet, nearSub := p.Network(tn.nc, "keys-near", "10.70.0.0/24")
		farNet, farSub := p.Network(tn.nc, "keys-far", "10.71.0.0/24")
		for _, sub := range []string{nearSub, farSub} {
			ctx, cancel := p.Ctx()
			_, err := routers.AddInterface(ctx, tn.nc, tn.router, routers.AddInterfaceOpts{SubnetID: sub}).Extract()
			cancel()
			if err != nil {
				t.Fatalf("project %d: add interface on %s: %v", i+1, sub, err)
			}
		}
		vm := func(name, netID, subID, ip, chassis string, sg string) harness.VM {
			return p.Plug(name, chassis, p.Port(tn.nc, ports.CreateOpts{NetworkID: netID, Name: name,
				FixedIPs: []ports.IP{{SubnetID: subID, IPAddress: ip}}, SecurityGroups: &[]string{sg}}))
		}
		tn.near = vm(fmt.Sprintf("k%d-near", i+1), nearNet, nearSub, "10.70.0.10", p.Chassis[0], open)
		tn.far = vm(fmt.Sprintf("k%d-far", i+1), farNet, farSub, tn.farIP, p.Chassis[1], open)
		tn.group = p.Group(tn.nc, fmt.Sprintf("keys-guard-%d", i))
		tn.guarded = vm(fmt.Sprintf("k%d-grd", i+1), nearNet, nearSub, tn.guard, p.Chassis[1], tn.group)
	}
	// The two groups' rules: project 1 admits TCP 22, project 2 ICMP; ids
	// colliding under the old hash.
	ruleBody := func(i int) []byte {
		proto := []string{`"protocol":"tcp","port_range_min":22,"port_range_max":22`, `"protocol":"icmp"`}[i]
		return []byte(fmt.Sprintf(`{"security_group_rule":{"security_group_id":%q,"direction":"ingress","ethertype":"IPv4",%s}}`, ts[i].group, proto))
	}
	rka, rkb := collidingKeys(t, "/v2.0/security-group-rules", projects[0], ruleBody(0), projects[1], ruleBody(1))
	for i := range ts {
		ts[i].rule = createWithKey(p, projects[i], []string{rka, rkb}[i], "/v2.0/security-group-rules", "security_group_rule", ruleBody(i))
	}
	if fnv32a(ts[0].router) != fnv32a(ts[1].router) || fnv32a(ts[0].rule) != fnv32a(ts[1].rule) {
		t.Fatal("the ids do not collide under FNV-1a-32: the test would prove nothing")
	}
	for _, o := range []struct{ table, a, b string }{{fsm.TableRouters, ts[0].router, ts[1].router}, {fsm.TableSecurityGroupRules, ts[0].rule, ts[1].rule}} {
		if x, y := p.DatapathKey(o.table, o.a), p.DatapathKey(o.table, o.b); x == y {
			t.Fatalf("%s %s and %s share datapath key %d", o.table, o.a, o.b, x)
		}
	}

	// Routing: each project's near VM reaches its own far VM, and not the
	// other project's far address (nothing of its own is there).
	for i, tn := range ts {
		p.PingOK(harness.FirstPacket, tn.near.Name, tn.farIP)
		p.PingFails(harness.Change, 2, tn.near.Name, ts[1-i].farIP)
	}
	// Security groups: project 2's guarded VM admits ICMP (its rule);
	// project 1's admits only TCP 22, so ICMP from its own near VM fails.
	p.PingOK(harness.Change, ts[1].near.Name, ts[1].guard)
	p.PingFails(harness.Change, 3, ts[0].near.Name, ts[0].guard)
	p.Listen(ts[0].guarded.Name, 22)
	p.TCPOK(harness.Change, ts[0].near.Name, ts[0].guard, 22)
}
