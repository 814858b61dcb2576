package testenv

import (
	"context"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func TestDynamoDB(t *testing.T) {
	preset := os.Getenv("AWS_ENDPOINT_URL_DYNAMODB") != ""
	var endpoint string
	t.Run("serve", func(t *testing.T) {
		endpoint = DynamoDB(t)
		if got := os.Getenv("AWS_ENDPOINT_URL_DYNAMODB"); got != endpoint {
			t.Fatalf("AWS_ENDPOINT_URL_DYNAMODB = %q, want %q", got, endpoint)
		}
		if !preset {
			u, err := url.Parse(endpoint)
			if err != nil || u.Hostname() != "127.0.0.1" {
				t.Fatalf("endpoint %q is not on 127.0.0.1", endpoint)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			t.Fatal(err)
		}
		client := dynamodb.NewFromConfig(cfg)
		name := UniqueName(t, "testenv")
		_, err = client.CreateTable(ctx, &dynamodb.CreateTableInput{
			TableName:            aws.String(name),
			AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("k"), AttributeType: types.ScalarAttributeTypeS}},
			KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("k"), KeyType: types.KeyTypeHash}},
			BillingMode:          types.BillingModePayPerRequest,
		})
		if err != nil {
			t.Fatalf("create table over the SDK: %v", err)
		}
		// dynalite answers CreateTable before the table takes writes when
		// the machine is busy: wait until it is ACTIVE, as a client must.
		if err := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) { o.MinDelay = 10 * time.Millisecond }).
			Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 15*time.Second); err != nil {
			t.Fatalf("table %s: %v", name, err)
		}
		if _, err := client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: aws.String(name),
			Item:      map[string]types.AttributeValue{"k": &types.AttributeValueMemberS{Value: "a"}},
		}); err != nil {
			t.Fatalf("put item: %v", err)
		}
	})
	if preset || t.Failed() {
		return
	}
	// The subtest's cleanup stopped the server.
	u, _ := url.Parse(endpoint)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", u.Host, 200*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("dynalite still accepts connections on %s after cleanup", u.Host)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestUniqueName(t *testing.T) {
	a, b := UniqueName(t, "nearline"), UniqueName(t, "nearline")
	if a == b {
		t.Fatalf("two calls gave the same name %q", a)
	}
	ok := regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,200}$`)
	for _, n := range []string{a, UniqueName(t, "we ird/prefix#"), UniqueName(t, strings.Repeat("x", 300))} {
		if !ok.MatchString(n) {
			t.Errorf("UniqueName gave %q, not a valid table name", n)
		}
	}
	if !strings.HasPrefix(a, "nearline-TestUniqueName-") {
		t.Errorf("UniqueName = %q, want prefix and test name first", a)
	}
}

// pagedScan serves a scan in pages of the items' keys, like DynamoDB: each
// page but the last names the next page's start in LastEvaluatedKey.
type pagedScan struct {
	pages  [][]string
	starts []string // ExclusiveStartKey of each call ("" for none)
}

func (p *pagedScan) Scan(_ context.Context, in *dynamodb.ScanInput, _ ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	i, start := 0, ""
	if k, ok := in.ExclusiveStartKey["pk"].(*types.AttributeValueMemberS); ok {
		start = k.Value
		for i < len(p.pages) && p.pages[i][0] != start {
			i++
		}
	}
	p.starts = append(p.starts, start)
	out := &dynamodb.ScanOutput{}
	for _, k := range p.pages[i] {
		out.Items = append(out.Items, map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: k}})
	}
	if i+1 < len(p.pages) {
		out.LastEvaluatedKey = map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: p.pages[i+1][0]}}
	}
	return out, nil
}

func TestScanItemsPages(t *testing.T) {
	api := &pagedScan{pages: [][]string{{"a", "b"}, {"c"}, {"d", "e"}}}
	var got []string
	n := ScanItems(t, api, "table", "pk", func(it map[string]types.AttributeValue) {
		got = append(got, it["pk"].(*types.AttributeValueMemberS).Value)
	})
	if n != 5 || strings.Join(got, ",") != "a,b,c,d,e" || strings.Join(api.starts, ",") != ",c,d" {
		t.Errorf("ScanItems: %d items %v, scans from %q", n, got, api.starts)
	}
}
