/** Student Records ("drops in the ocean"), recall questions: PERK vs FT-ICR. */
import { studentRecords } from "./families.ts";

export default studentRecords("recall");
