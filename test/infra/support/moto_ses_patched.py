"""moto_server with three SES receipt-rule gaps of moto 5.2.1 patched — for the infra deploy test only.

1. CreateReceiptRule with S3Action.IamRoleArn: moto checks `role_arn in iam_backend.roles`, but that dict is keyed by
   role *id*, so every role ARN is refused ("Could not assume the provided IAM role"). Patched to look the role up by
   ARN, which is what the check means to do. (The real SES assumes the role; moto cannot, so existence is all we test.)
2. DeleteReceiptRule is not implemented: `terraform destroy` retries it until its timeout. Patched to remove the rule
   from its set, with SES's behaviour (deleting a rule that does not exist succeeds; a missing set is
   RuleSetDoesNotExist).

3. CreateReceiptRule with S3Action.KmsKeyArn = arn:aws:kms:<region>:<account>:alias/aws/ses: moto looks the alias up
   in its KMS backend, where AWS-managed keys do not exist until something creates them (in AWS, SES does on first
   use), so the rule is refused ("Unable to use AWS KMS key"). Patched to accept this account's and region's
   alias/aws/ses, as SES does; every other key is still checked.

Nothing else is changed. Usage: python3 moto_ses_patched.py -H 127.0.0.1 -p <port>
"""
import sys

from moto.iam.models import iam_backends
from moto.ses import models as ses_models
from moto.ses import responses as ses_responses
from moto.ses.exceptions import RuleSetDoesNotExist
from moto.utilities.utils import get_partition


def _validate_iam_role(self, role_arn):
    backend = iam_backends[self.account_id][get_partition(self.region_name)]
    try:
        backend.get_role_by_arn(role_arn)
    except Exception:
        raise ses_models.InvalidParameterValue("Could not assume the provided IAM role")


_original_validate_kms_key = ses_models.SESBackend._validate_kms_key


def _validate_kms_key(self, kms_key_arn):
    if kms_key_arn == f"arn:{get_partition(self.region_name)}:kms:{self.region_name}:{self.account_id}:alias/aws/ses":
        return
    _original_validate_kms_key(self, kms_key_arn)


def delete_receipt_rule(self, rule_set_name, rule_name):
    rule_set = self.receipt_rule_set.get(rule_set_name)
    if rule_set is None:
        raise RuleSetDoesNotExist(f"Rule set does not exist: {rule_set_name}")
    rule_set.rules = [r for r in rule_set.rules if r.get("Name") != rule_name]


def delete_receipt_rule_response(self):
    self.backend.delete_receipt_rule(self._get_param("RuleSetName"), self._get_param("RuleName"))
    return ses_responses.EmptyResult()


ses_models.SESBackend._validate_iam_role = _validate_iam_role
ses_models.SESBackend._validate_kms_key = _validate_kms_key
ses_models.SESBackend.delete_receipt_rule = delete_receipt_rule
ses_responses.EmailResponse.delete_receipt_rule = delete_receipt_rule_response

if __name__ == "__main__":
    from moto.server import main

    main(sys.argv[1:])
